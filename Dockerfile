# One image for the flex-template launcher and the Dataflow workers
# (--sdk_container_image), so both run the same code and dependencies.
# The Beam version here must equal requirements.txt (a test checks it).
ARG BEAM_VERSION=2.77.0
# A dated release of Google's launcher image, pinned like everything else;
# bump it deliberately (docker build --build-arg LAUNCHER_TAG=...).
ARG LAUNCHER_TAG=flex_templates_base_image_release_20240628_RC00
FROM gcr.io/dataflow-templates-base/python311-template-launcher-base:${LAUNCHER_TAG} AS launcher

FROM apache/beam_python3.11_sdk:${BEAM_VERSION}
COPY --from=launcher /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher

ARG WORKDIR=/template
WORKDIR ${WORKDIR}
COPY requirements.txt setup.py main.py ./
# The job only: pipeline/ and schemas/ (the commands stay on the laptop).
COPY pipeline ./pipeline
COPY schemas ./schemas
RUN pip install --no-cache-dir -r requirements.txt && pip install --no-cache-dir --no-deps .

ENV FLEX_TEMPLATE_PYTHON_PY_FILE="${WORKDIR}/main.py" \
    FLEX_TEMPLATE_PYTHON_SETUP_FILE="${WORKDIR}/setup.py" \
    PIP_NO_DEPS=True

# The Beam SDK harness is the entry point on workers; the launcher runs main.py.
ENTRYPOINT ["/opt/apache/beam/boot"]
