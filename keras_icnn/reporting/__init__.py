"""Writing results down: tables (markdown and console), JSON outputs, figures and the HTML
report."""
