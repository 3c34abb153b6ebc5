"""The job as an installable package: what Dataflow workers run.

Only `pipeline` (the job) and `schemas` (the contract it validates against)
with requirements.txt. The project's commands (localrun, localstack,
provision, simulator, reconcile, demo, bench, common) run from a checkout
with requirements-tools.txt and are never shipped to workers. Workers get it
from the image (Dockerfile) or `--setup_file ./setup.py`; locally
scripts/bootstrap.sh installs it in editable mode into .venv.
"""

from pathlib import Path

import setuptools

HERE = Path(__file__).resolve().parent
REQUIREMENTS = [line.strip() for line in (HERE / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

setuptools.setup(
    name="ecommerce-streaming-pipeline",
    version="0.1.0",
    description="Pub/Sub -> Beam -> BigQuery + GCS streaming pipeline for e-commerce events",
    python_requires=">=3.10",
    # Namespace discovery so schemas/events and schemas/tables (data only)
    # ship with the package: workers validate against the same .avsc files.
    packages=setuptools.find_namespace_packages(include=["pipeline", "pipeline.*", "schemas", "schemas.*"],
                                                exclude=["schemas.released"]),
    package_data={"schemas.events": ["*.avsc"], "schemas.tables": ["*.avsc"]},
    include_package_data=True,
    install_requires=REQUIREMENTS,
)
