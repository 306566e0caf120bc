FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng ffmpeg && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY streams streams
COPY processors processors
COPY schemas schemas
COPY infra infra
RUN pip install --no-cache-dir . && pip install --no-cache-dir --no-deps resemblyzer==0.1.4
CMD ["voxflow", "worker"]
