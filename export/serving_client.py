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


def answer_locally(saved_model_dir, request):
    """Serve a PredictRequest with ``tf.saved_model.load`` (what the model server does)."""
    import tensorflow as tf

    served = tf.saved_model.load(saved_model_dir)
    fn = served.signatures[request.model_spec.signature_name or "serving_default"]
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    return {k: v.numpy() for k, v in fn(**inputs).items()}


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
    if args.images:
        if not os.path.exists(args.images):
            raise FileNotFoundError(f"--images file not found: {args.images}")
        images = np.load(args.images).astype(args.dtype)
    else:
        images = np.zeros((1, args.image_size, args.image_size, 3), args.dtype)
    if args.saved_model:
        outputs = answer_locally(args.saved_model, grpc_request(images, args.signature, args.model_name))
        print(json.dumps({k: v.tolist() for k, v in outputs.items()}))
    elif args.format == "rest":
        print(json.dumps(rest_payload(images, args.signature)))
    else:
        print(grpc_request(images, args.signature, args.model_name))


if __name__ == "__main__":
    sys.exit(main())
