"""An independent gRPC client (Python grpcio) for spotenc's coordinator.

Usage: grpc_check.py HOST:PORT

Checks, and prints one line per result:
- grpc.health.v1 Check for the server ("") and both spotenc services;
- reflection under grpc.reflection.v1alpha (grpcio-reflection's own
  descriptor database) and grpc.reflection.v1 (the same messages sent to the
  v1 method): the listed services, and JobService's methods resolved from the
  served file descriptors.
Exits non-zero on the first failure.
"""

import sys

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

SERVICES = ["spotenc.v1.JobService", "spotenc.v1.WorkerService"]


def health(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    for name in [""] + SERVICES:
        status = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
        print(f"health {name or '(server)'}: {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")
        if status != health_pb2.HealthCheckResponse.SERVING:
            sys.exit(f"health {name!r} is not SERVING")


def reflection_v1alpha(channel):
    db = ProtoReflectionDescriptorDatabase(channel)
    services = sorted(db.get_services())
    print(f"v1alpha services: {' '.join(services)}")
    for s in SERVICES + ["grpc.health.v1.Health"]:
        if s not in services:
            sys.exit(f"v1alpha reflection does not list {s}")
    pool = descriptor_pool.DescriptorPool(db)
    jobs = pool.FindServiceByName("spotenc.v1.JobService")
    methods = sorted(m.name for m in jobs.methods)
    print(f"v1alpha JobService methods: {' '.join(methods)}")
    for m in ["SubmitJob", "GetCapacity"]:
        if m not in methods:
            sys.exit(f"JobService descriptor lacks {m}")


def reflection_v1(channel):
    # grpc.reflection.v1 and v1alpha have the same messages; only the method
    # path differs, so grpcio's v1alpha types serve for both.
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    responses = call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    services = sorted(s.name for r in responses for s in r.list_services_response.service)
    print(f"v1 services: {' '.join(services)}")
    for s in SERVICES:
        if s not in services:
            sys.exit(f"v1 reflection does not list {s}")


def main():
    with grpc.insecure_channel(sys.argv[1]) as channel:
        health(channel)
        reflection_v1alpha(channel)
        reflection_v1(channel)


if __name__ == "__main__":
    main()
