# One variant: the runtime image plus the variant folder (manifest + model files) as the last,
# thin layer. Labels name the variant; the step server is the default command.
ARG RUNTIME=milestone-runtime:latest
FROM ${RUNTIME}
ARG VARIANT
ARG STEP
ARG FORMAT
ARG PRECISION
ARG MANIFEST_SHA256
LABEL org.milestone.variant=${VARIANT} org.milestone.step=${STEP} org.milestone.format=${FORMAT} \
      org.milestone.precision=${PRECISION} org.milestone.manifest-sha256=${MANIFEST_SHA256}
ENV MILESTONE_VARIANT_DIR=/models/${VARIANT}
CMD ["sh", "-c", "exec python -m milestone_lib.serving.server --variant \"$MILESTONE_VARIANT_DIR\" --host 127.0.0.1 --port \"$MILESTONE_PORT\""]
COPY variant/ /models/${VARIANT}/
