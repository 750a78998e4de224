"""Build TensorFlow Serving requests for both signatures (REST JSON and gRPC), and answer them
locally from a SavedModel to check an export without a model server.

Examples:
    # REST body for curl (POST http://HOST:8501/v1/models/NAME:predict)
    python export/serving_client.py --images=batch.npy --signature=explain --format=rest
    # gRPC PredictRequest (text proto), as sent to HOST:8500
    python export/serving_client.py --images=batch.npy --signature=explain --format=grpc
    # Answer the request with the exported model in this process (no keras_icnn import)
    python export/serving_client.py --images=batch.npy --saved_model=/tmp/models/icnn/1

--images: a .npy array [N, H, W, 3]; without it a batch of zeros of --image_size.
"""
import argparse
import json
import os
import sys

import numpy as np


def rest_payload(images, signature="serving_default"):
    """The TF Serving REST ``:predict`` body: ``{"signature_name": ..., "instances": [...]}``."""
    images = np.asarray(images)
    return {"signature_name": signature, "instances": images.tolist()}


def grpc_request(images, signature="serving_default", model_name="icnn", version=None):
    """A ``tensorflow_serving.apis.predict_pb2.PredictRequest`` for ``PredictionService.Predict``."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.asarray(images)))
    return request


def answer_locally(saved_model_dir, request=None, images=None, signature="serving_default"):
    """Answer with ``tf.saved_model.load`` (what the model server does): a PredictRequest, or
    ``images`` and a ``signature`` (no tensorflow-serving-api needed)."""
    import tensorflow as tf

    if not os.path.isdir(saved_model_dir):
        raise FileNotFoundError(f"--saved_model directory not found: {saved_model_dir}")
    served = tf.saved_model.load(saved_model_dir)
    if request is not None:
        signature = request.model_spec.signature_name or "serving_default"
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    else:
        inputs = {"images": tf.constant(np.asarray(images))}
    if signature not in served.signatures:
        raise ValueError(f"`signature` must be one of {sorted(served.signatures)}. "
                         f"Received: signature={signature!r}")
    return {k: v.numpy() for k, v in served.signatures[signature](**inputs).items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", help=".npy file with images [N, H, W, 3]")
    p.add_argument("--image_size", type=int, default=64, help="size of the zero batch without --images")
    p.add_argument("--dtype", default="float32", choices=["float32", "uint8"])
    p.add_argument("--signature", default="serving_default", choices=["serving_default", "explain"])
    p.add_argument("--model_name", default="icnn")
    p.add_argument("--format", default="rest", choices=["rest", "grpc"])
    p.add_argument("--saved_model", help="answer the request locally from this export")
    args = p.parse_args(argv)
    if args.image_size < 1:
        p.error(f"--image_size must be >= 1. Received: {args.image_size}")
    if args.images:
        if not os.path.exists(args.images):
            p.error(f"--images file not found: {args.images}")
        images = np.load(args.images)
        if images.ndim != 4 or images.shape[-1] != 3:
            p.error(f"--images must hold an array [N, H, W, 3]. Received: shape {images.shape}")
        images = images.astype(args.dtype)
    else:
        images = np.zeros((1, args.image_size, args.image_size, 3), args.dtype)
    if args.saved_model:
        if not os.path.isdir(args.saved_model):
            p.error(f"--saved_model directory not found: {args.saved_model}")
        outputs = answer_locally(args.saved_model, images=images, signature=args.signature)
        print(json.dumps({k: v.tolist() for k, v in outputs.items()}))
    elif args.format == "rest":
        print(json.dumps(rest_payload(images, args.signature)))
    else:
        print(grpc_request(images, args.signature, args.model_name))


if __name__ == "__main__":
    sys.exit(main())
