# spine_det on a CUDA machine: torch, the official Detectron2 built with its CUDA ops
# at a pinned commit, and this package.
#   docker build -t spine_det .
#   docker run --gpus all --shm-size 8g -v /path/to/data:/data -v "$PWD/output:/output" spine_det \
#       tools/train_net.py --config-file configs/lat_vertebra.yaml --data-root /data OUTPUT_DIR /output/lat_vertebra
FROM nvidia/cuda:13.0.1-cudnn-devel-ubuntu24.04

ARG DETECTRON2_COMMIT=02b5c4e295e990042a714712c21dc79b731e8833
# Detectron2's own Dockerfile stops at Turing; build the ops for Ampere and Hopper too.
ARG TORCH_CUDA_ARCH_LIST="7.5;8.0;8.6;8.9;9.0+PTX"

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    FORCE_CUDA=1 \
    TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST} \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    SPINE_DET_CACHE=/output/cache \
    MPLBACKEND=Agg

# The CUDA base image pins the toolchain; Ubuntu's python3/git/compilers track the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev git build-essential ninja-build \
    && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv /opt/venv && useradd --create-home --uid 1000 spine

WORKDIR /workspace
COPY setup.py README.md ./
COPY requirements ./requirements
COPY spine_det ./spine_det
COPY tools ./tools
COPY configs ./configs
RUN pip install -c requirements/constraints.txt -e ".[bench]" \
    && DETECTRON2_SOURCE=git DETECTRON2_COMMIT=${DETECTRON2_COMMIT} python -m spine_det.tools.install_detectron2 \
    && mkdir -p /data /output && chown spine:spine /output

USER 1000:1000
VOLUME ["/data", "/output"]
ENTRYPOINT ["python"]
CMD ["-m", "spine_det.tools", "doctor"]
