# One image for every role of the service. The default command runs the API; docker-compose.yml
# runs the same image as `python main_worker.py --queues pano|ceph ...` and `python main_delivery.py`.
# Models are not baked in: mount them (e.g. ./models:/models:ro) and point
# XRAY__PIPELINES__PANO__MODEL / XRAY__PIPELINES__CEPH__MODEL at the .onnx files (each with its
# model card beside it).
FROM python:3.11-slim

# ONNX Runtime build. The default is the CPU wheel pinned in requirements.txt (keep the two equal;
# tests/test_deployment.py checks it). For GPU hosts build with
#   docker build --build-arg ONNXRUNTIME=onnxruntime-gpu==1.32.0 .
# Both wheels install the same `onnxruntime` module and must never be installed side by side (the
# second overwrites part of the first), so the CPU pin is dropped from the requirements and this
# package installed in its place. The GPU wheel also needs CUDA 12 and cuDNN 9 libraries, which
# python:3.11-slim does not have: provide them (an nvidia/cuda *-cudnn-runtime base with Python
# 3.11, or NVIDIA's CUDA/cuDNN wheels) and run the GPU workers with `device: cuda`, which refuses
# to load instead of quietly falling back to the CPU.
ARG ONNXRUNTIME=onnxruntime==1.32.0

# PYTHONUNBUFFERED: log lines reach `docker logs` at once, not when a buffer fills.
# XRAY__API__UPLOAD_DIR: image storage shared by the API (writes) and the workers (read, delete);
# mount one volume there in every API and worker container.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XRAY__API__UPLOAD_DIR=/data/uploads

WORKDIR /app

# Runtime dependencies only (requirements-dev.txt stays out), in a layer of their own so code
# changes do not reinstall them. Every pin has a manylinux wheel for x86_64: no compiler needed.
COPY requirements.txt ./
RUN sed '/^onnxruntime==/d' requirements.txt > /tmp/requirements-runtime.txt \
    && pip install --no-cache-dir -r /tmp/requirements-runtime.txt "${ONNXRUNTIME}" \
    && rm /tmp/requirements-runtime.txt

# Non-root. The upload directory is created here, owned by that user, so a fresh named volume
# mounted on it takes this ownership and the API can write to it.
RUN useradd --system --no-log-init --uid 10001 --create-home --home-dir /home/xray xray \
    && mkdir -p /data/uploads /models \
    && chown xray:xray /data/uploads

COPY config.yaml main_api.py main_worker.py main_delivery.py ./
COPY server/ ./server/
COPY pipelines/ ./pipelines/

USER xray

EXPOSE 8000

# No HEALTHCHECK here: the image also runs workers and delivery processes, which serve no HTTP.
# docker-compose.yml gives the api service its own health check (GET /health via urllib, since
# the slim image has no curl).

# Exec form: Python is PID 1 and receives SIGTERM itself (the API then finishes in-flight requests
# within 30 s; a worker gives running tasks worker.shutdown_grace_s, then requeues them).
CMD ["python", "main_api.py"]
