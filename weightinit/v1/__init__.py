"""Generated protobuf / gRPC stubs of the weightinit.v1 API (do not edit).

Regenerate with ``scripts/gen-protos`` after changing ``protos/weightinit/v1``.
"""
