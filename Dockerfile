# spine_det on a CUDA machine: torch from its PyPI wheels, the official Detectron2 built with its CUDA ops
# at a pinned commit, and this package.
#   docker build -t spine_det .
#   docker run --gpus all --shm-size 8g -v /path/to/data:/data -v "$PWD/output:/output" spine_det \
#       train-net --config-file lat_vertebra.yaml --data-root /data OUTPUT_DIR /output/lat_vertebra
#
# Two stages, so that CUDA is shipped once:
# * builder: CPython 3.11 (the version CI tests) on Debian 12, with nvcc and the CUDA headers from NVIDIA's
#   Debian 12 repository at CUDA 13.0, the CUDA of the pinned torch wheels (requirements/constraints.txt:
#   torch 2.14.1 with nvidia-cuda-runtime 13.0 and the other nvidia-* cu13 wheels). It builds the virtual
#   environment: the pinned dependencies first, then Detectron2's ops compiled against that torch
#   (they need no cuDNN). The toolkit stays in this stage.
# * runtime: the same Python on Debian 12 slim, with no system CUDA: torch's wheels bring the CUDA runtime,
#   cuBLAS and cuDNN, and `--gpus` brings the host's driver. The source is copied after the dependency
#   layers and installed with --no-deps, so a code edit rebuilds only the last two layers.
# Files are written with the user's umask (0644 under Docker's 022), as uid 1000, into /output.

FROM python:3.11-bookworm AS builder

ARG DETECTRON2_COMMIT=02b5c4e295e990042a714712c21dc79b731e8833
# Detectron2's own Dockerfile stops at Turing; build the ops for Ampere and Hopper too.
ARG TORCH_CUDA_ARCH_LIST="7.5;8.0;8.6;8.9;9.0+PTX"
ARG CUDA_APT_VERSION=13-0

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CUDA_HOME=/usr/local/cuda-13.0 \
    FORCE_CUDA=1 \
    TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST} \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/cuda-13.0/bin:$PATH

# nvcc and the CUDA development headers (no cuDNN, no driver); the repository's key comes in its keyring package.
# hadolint ignore=DL3008
RUN curl -fsSL -o /tmp/cuda-keyring.deb \
        https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb \
    && dpkg -i /tmp/cuda-keyring.deb && rm /tmp/cuda-keyring.deb \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        "cuda-minimal-build-${CUDA_APT_VERSION}" "cuda-libraries-dev-${CUDA_APT_VERSION}" ninja-build \
    && rm -rf /var/lib/apt/lists/*

# The dependencies, pinned: rebuilt only when a requirements file changes.
WORKDIR /build
COPY requirements ./requirements
RUN python -m venv /opt/venv \
    && pip install -c requirements/constraints.txt -r requirements/runtime.txt -r requirements/smp.txt

# Detectron2 at the pinned commit, by the package's own installer (standard library only; it records the
# source for `spine-det doctor`): rebuilt only when the installer or the commit changes.
COPY spine_det/tools/install_detectron2.py ./
RUN python install_detectron2.py --source git --commit "${DETECTRON2_COMMIT}"


FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    SPINE_DET_CACHE=/output/cache \
    SPINE_DET_DOCKER_IMAGE=1 \
    MPLBACKEND=Agg

RUN useradd --create-home --uid 1000 spine \
    && mkdir -p /data /output && chown spine:spine /output

COPY --from=builder /opt/venv /opt/venv

WORKDIR /workspace
COPY setup.py README.md MANIFEST.in ./
COPY requirements ./requirements
COPY spine_det ./spine_det
COPY tools ./tools
COPY configs ./configs
RUN pip install --no-deps --no-build-isolation . && rm -rf build ./*.egg-info

USER 1000:1000
VOLUME ["/data", "/output"]
ENTRYPOINT ["spine-det"]
CMD ["doctor"]
