# One image for every Python service (web, worker, gpu-worker, beat). The GPU worker image is built
# with TORCH_INDEX pointing at a CUDA wheel index of the same torch version.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=controlplane.settings.production \
    DATA_DIR=/data HF_HUB_OFFLINE=1
WORKDIR /app
COPY requirements/ requirements/
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir --extra-index-url ${TORCH_INDEX} -r requirements/base.txt \
 && pip install --no-cache-dir --no-deps -r requirements/nodeps.txt
COPY . .
RUN SECRET_KEY=build ALLOWED_HOSTS=build python manage.py collectstatic --noinput
RUN useradd --create-home app && mkdir -p /data && chown app /data
USER app
EXPOSE 8000
CMD ["gunicorn", "controlplane.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4"]
