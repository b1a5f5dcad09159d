# One image for web and workers. CPU builds of torch by default (small, runs anywhere);
# docker-compose.gpu.yml builds it with PyPI's CUDA builds (TORCH_INDEX_URL=https://pypi.org/simple).
FROM python:3.12-slim
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=annotator.settings.prod
WORKDIR /app
# torch first, from the index the build asks for; then the rest, every version and hash
# locked (requirements.txt is generated from pyproject.toml by `make lock`).
COPY requirements-torch.txt requirements.txt ./
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" -r requirements-torch.txt \
 && pip install --no-cache-dir --require-hashes -r requirements.txt
# Not root: the app owns only /data (the volume) and its home.
RUN useradd --create-home --uid 10001 annotator && mkdir /data && chown annotator /data
COPY --chown=annotator . .
USER annotator
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "annotator.asgi:application"]
