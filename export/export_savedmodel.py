"""`keras-icnn-export`, as a script: its code and help are in keras_icnn/cli/export.py."""
import keras_icnn_cli

if __name__ == "__main__":
    keras_icnn_cli.export()
