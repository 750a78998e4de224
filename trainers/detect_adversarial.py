"""`keras-icnn-detect-adversarial` as a script (code and help: keras_icnn/cli/detect_adversarial.py)."""
import keras_icnn_cli

if __name__ == "__main__":
    keras_icnn_cli.detect_adversarial()
