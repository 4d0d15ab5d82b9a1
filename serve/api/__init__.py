"""The HTTP service (FastAPI): app, dependencies, schemas, one router per resource.

Imports serve.cases.findings and vision; never serve.cli.main.
"""
