"""`keras-icnn-train-explainer` as a script (code and help: keras_icnn/cli/train_explainer.py)."""
import keras_icnn_cli

if __name__ == "__main__":
    keras_icnn_cli.train_explainer()
