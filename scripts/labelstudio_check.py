"""Connect a real Label Studio to a running streetorder service and check the annotators' loop.

What it does, through Label Studio's own REST API (so Label Studio itself calls the backend):
1. creates a project with streetorder's labelling config (vision/annotations.label_config);
2. adds the service as the project's ML backend, with basic auth (the `annotate` key as password):
   Label Studio calls /labelstudio/health and /labelstudio/setup and must report it connected;
3. imports one task whose image is a local file (`/data/local-files/?d=<image>`);
4. asks Label Studio to retrieve predictions (it calls /labelstudio/predict) and reads them back:
   rectanglelabels in percent, scores, the model version;
5. gives the ML webhook Label Studio created (<backend>/webhook) the key as a header, submits the
   prediction as an annotation, and checks that the service kept it in its annotations inbox.

Usage (both services running; the same local-files root on both sides):

    LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true \\
    LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=/srv/photos label-studio start --port 8089 \\
        --username admin@example.com --password ... --user-token <40 hex>
    STREETORDER_LABELSTUDIO_FILES_ROOT=/srv/photos STREETORDER_ANNOTATIONS_DIR=/srv/annotations \\
        streetorder serve --port 8090
    .venv/bin/python scripts/labelstudio_check.py --ls-url http://127.0.0.1:8089 --ls-token <40 hex> \\
        --backend-url http://127.0.0.1:8090/labelstudio --key so_... --image street/a.jpg \\
        --annotations-dir /srv/annotations

Prints one JSON object with what Label Studio saw; exits 1 when a step fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# after the path above: runs from a checkout
from vision.data.annotations.label_config import label_config
from vision.data.annotations.pull import LabelStudio
from vision.data.annotations.records import AnnotationError


def main() -> int:
    try:
        return check()
    except AnnotationError as err:  # a Label Studio call failed: which one, and its answer
        print(f"labelstudio_check: {err}", file=sys.stderr)
        return 1


def check() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ls-url", required=True)
    parser.add_argument("--ls-token", required=True, help="a Label Studio user token (legacy token)")
    parser.add_argument("--backend-url", required=True, help="the service's /labelstudio URL")
    parser.add_argument("--key", required=True, help="a streetorder API key with the annotate scope")
    parser.add_argument("--image", required=True, help="image path relative to the local-files root")
    parser.add_argument(
        "--annotations-dir", type=Path, help="the service's annotations_dir, to see the webhook land"
    )
    args = parser.parse_args()
    ls = LabelStudio(args.ls_url, args.ls_token)
    report: dict[str, Any] = {}
    project = ls.call(
        "POST",
        "/api/projects",
        {"title": f"streetorder check {int(time.time())}", "label_config": label_config()},
    )
    report["project"] = project["id"]
    backend = ls.call(
        "POST",
        "/api/ml",
        {
            "project": project["id"],
            "url": args.backend_url,
            "title": "streetorder",
            "auth_method": "BASIC_AUTH",
            "basic_auth_user": "labelstudio",
            "basic_auth_pass": args.key,
            "is_interactive": False,
        },
    )
    backend = ls.call("GET", f"/api/ml/{backend['id']}")
    report["ml_backend_state"] = backend.get("state")
    report["ml_backend_model_version"] = backend.get("model_version")
    if backend.get("state") != "CO":  # CONNECTED
        print(json.dumps(report), file=sys.stderr)
        raise SystemExit(f"Label Studio did not connect the backend: {backend.get('error_message')}")
    imported = ls.call(
        "POST",
        f"/api/projects/{project['id']}/import?return_task_ids=true",
        [{"data": {"image": f"/data/local-files/?d={args.image}"}}],
    )
    task_id = imported["task_ids"][0]
    ls.call(
        "POST",
        f"/api/dm/actions?id=retrieve_tasks_predictions&project={project['id']}",
        {"selectedItems": {"all": True, "excluded": []}},
    )
    predictions = ls.call("GET", f"/api/predictions?task={task_id}")
    predictions = predictions.get("results", predictions) if isinstance(predictions, dict) else predictions
    report["predictions"] = [
        {
            "model_version": p.get("model_version"),
            "score": p.get("score"),
            "boxes": [r["value"] for r in p.get("result", [])],
        }
        for p in predictions
    ]
    if not predictions:
        print(json.dumps(report, indent=1))
        raise SystemExit("no prediction came back from the backend")
    webhooks = ls.call("GET", f"/api/webhooks?project={project['id']}")
    for hook in webhooks:
        if hook["url"].rstrip("/") == args.backend_url.rstrip("/") + "/webhook":
            ls.call(
                "PATCH", f"/api/webhooks/{hook['id']}", {"headers": {"Authorization": f"Token {args.key}"}}
            )
            report["webhook"] = hook["url"]
    annotation = ls.call(
        "POST",
        f"/api/tasks/{task_id}/annotations",
        {"result": predictions[0]["result"], "was_cancelled": False},
    )
    report["annotation"] = annotation["id"]
    if args.annotations_dir:
        deadline = time.monotonic() + 30
        inbox = args.annotations_dir / "inbox"
        while time.monotonic() < deadline and not list(inbox.glob(f"{project['id']}-{task_id}.json")):
            time.sleep(0.5)
        report["inbox"] = [p.name for p in inbox.glob(f"{project['id']}-*.json")]
    print(json.dumps(report, indent=1))
    return 0 if not args.annotations_dir or report["inbox"] else 1


if __name__ == "__main__":
    sys.exit(main())
