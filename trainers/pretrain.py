"""`keras-icnn-pretrain` as a script (code and help: keras_icnn/cli/pretrain.py)."""
import keras_icnn_cli

if __name__ == "__main__":
    keras_icnn_cli.pretrain()
