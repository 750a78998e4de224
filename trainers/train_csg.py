"""`keras-icnn-train-csg` as a script (code and help: keras_icnn/cli/train_csg.py)."""
import keras_icnn_cli

if __name__ == "__main__":
    keras_icnn_cli.train_csg()
