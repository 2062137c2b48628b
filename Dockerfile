# SMSGate: one image for API processes (smsgate serve) and workers (smsgate worker).
# Not built on the development machines (no container engine there); kept plain and standard.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY smsgate ./smsgate
RUN pip install --no-cache-dir . && useradd --create-home smsgate
USER smsgate
ENV SMSGATE_HOST=0.0.0.0 SMSGATE_PORT=8000 SMSGATE_DATA_DIR=/home/smsgate/data
EXPOSE 8000
CMD ["smsgate", "serve"]
