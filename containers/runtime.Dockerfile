# The runtime image: Python, ONNX Runtime, gRPC (+ health), the protocol stubs, milestone_lib.
# Built offline by milestone_lib.containers.build: the context holds wheels/ (the host's
# wheelhouse) and project/ (milestone_lib as a wheel); nothing is fetched during the build.
ARG BASE=milestone-base:bookworm
FROM ${BASE} AS deps
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \
      --find-links /tmp/wheels -r /tmp/wheels/requirements-runtime.txt \
 && /opt/venv/bin/pip uninstall -q -y pip setuptools \
 && rm -rf /opt/venv/lib/python3.11/site-packages/*/tests /opt/venv/lib/python3.11/site-packages/*/*/tests

FROM ${BASE}
COPY --from=deps /opt/venv /opt/venv
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin milestone
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 LANG=C.UTF-8 MILESTONE_PORT=8001
COPY project/ /tmp/project/
# milestone_lib is pure Python: its wheel unpacks into site-packages (the venv keeps no pip)
RUN python3 -m zipfile -e /tmp/project/*.whl /opt/venv/lib/python3.11/site-packages/ \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib/python3.11/site-packages/milestone_lib \
 && rm -rf /tmp/project
USER 10001:10001
WORKDIR /home/milestone
# grpc.health.v1 on the port the server was started on ($MILESTONE_PORT, set by the deploy backend)
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-m", "milestone_lib.serving.health"]
CMD ["python", "-m", "milestone_lib.serving.health", "--help"]
