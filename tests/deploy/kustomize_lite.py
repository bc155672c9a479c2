"""`kubectl kustomize` for the subset of kustomize that k8s/ uses, in Python.

Why not kustomize itself: no package CI can install (Debian has none, and the npm Helm package has no
kustomize), and a test that skips where the binary is missing would pass in CI without checking anything.
So this renders exactly the features k8s/ uses, the way kustomize v5 does (the generated ConfigMap's name
carries kustomize's own content hash, and references to it are rewritten), and refuses any other feature:
adding one to k8s/ fails the tests until this module learns it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Rendered", "render"]

_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "configMapGenerator", "components"}
_COMPONENT_KEYS = {"apiVersion", "kind", "patches"}
_GENERATOR_KEYS = {"name", "envs", "options"}
_GENERATOR_OPTIONS = {"labels"}


@dataclass
class Rendered:
    objects: list[dict[str, Any]]
    # generated name -> the name written in the kustomization (rag-7244fdgg29 -> rag)
    generated: dict[str, str] = field(default_factory=dict)


def render(directory: Path, extra_components: tuple[str, ...] = ()) -> Rendered:
    """The objects `kubectl kustomize DIRECTORY` prints, with `extra_components` added to `components:`."""
    kustomization = _load_one(directory / "kustomization.yaml")
    _only(kustomization, _KUSTOMIZATION_KEYS, directory / "kustomization.yaml")
    if kustomization.get("kind") != "Kustomization":
        raise ValueError(f"{directory}: not a Kustomization")
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        objects.extend(_load_all(directory / resource))
    rendered = Rendered(objects)
    for generator in kustomization.get("configMapGenerator", []):
        configmap = _generate_configmap(directory, generator)
        rendered.generated[configmap["metadata"]["name"]] = generator["name"]
        objects.append(configmap)
    for component in [*kustomization.get("components", []), *extra_components]:
        _apply_component(directory / component, objects)
    for generated, original in rendered.generated.items():
        for obj in objects:
            _rename_configmap_refs(obj, original, generated)
    return rendered


def _load_one(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a mapping")
    return data


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _only(data: dict[str, Any], allowed: set[str], where: object) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise NotImplementedError(f"{where}: kustomize features not rendered by the tests: {sorted(unknown)}")


def _read_env_file(path: Path) -> dict[str, str]:
    # kustomize's env-file rules: KEY=VALUE, the value verbatim (quotes included), '#' lines are comments.
    data: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line or line != raw:
            raise ValueError(f"{path}:{number}: expected KEY=VALUE without surrounding spaces: {raw!r}")
        key, value = line.split("=", 1)
        if key in data:
            raise ValueError(f"{path}:{number}: {key} given twice")
        data[key] = value
    return data


def _generate_configmap(directory: Path, generator: dict[str, Any]) -> dict[str, Any]:
    _only(generator, _GENERATOR_KEYS, f"configMapGenerator {generator.get('name')}")
    options = generator.get("options", {})
    _only(options, _GENERATOR_OPTIONS, f"configMapGenerator {generator['name']} options")
    data: dict[str, str] = {}
    for env in generator.get("envs", []):
        data.update(_read_env_file(directory / env))
    name = generator["name"]
    metadata: dict[str, Any] = {"name": f"{name}-{_configmap_hash(data)}"}
    if options.get("labels"):
        metadata["labels"] = dict(options["labels"])
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def _configmap_hash(data: dict[str, str]) -> str:
    # kustomize api/hasher: sha256 of Go's json.Marshal of {kind, name, data} (sorted keys, no spaces,
    # <>& escaped), the first 10 hex digits with 0 1 3 a e replaced so that no word is spelled. "name" is
    # always empty there: its lookup of the path "metadata/name" finds nothing (checked against kubectl 1.32).
    encoded = json.dumps(
        {"data": data, "kind": "ConfigMap", "name": ""}, sort_keys=True, separators=(",", ":")
    )
    encoded = encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"}))


def _apply_component(directory: Path, objects: list[dict[str, Any]]) -> None:
    component = _load_one(directory / "kustomization.yaml")
    _only(component, _COMPONENT_KEYS, directory / "kustomization.yaml")
    if component.get("kind") != "Component":
        raise ValueError(f"{directory}: not a Component")
    for patch in component.get("patches", []):
        _only(patch, {"target", "patch"}, f"{directory} patch")
        targets = [obj for obj in objects if _matches(obj, patch["target"])]
        if len(targets) != 1:
            raise ValueError(f"{directory}: patch target {patch['target']} matches {len(targets)} objects")
        for operation in yaml.safe_load(patch["patch"]):
            _json6902(targets[0], operation)


def _matches(obj: dict[str, Any], target: dict[str, str]) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    wanted = {"group": group, "version": version, "kind": obj["kind"], "name": obj["metadata"]["name"]}
    _only(target, set(wanted), "patch target")
    return all(wanted[key] == value for key, value in target.items())


def _json6902(obj: dict[str, Any], operation: dict[str, Any]) -> None:
    if operation["op"] not in ("add", "replace"):
        raise NotImplementedError(f"JSON patch op {operation['op']!r}")
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    value = copy.deepcopy(operation["value"])
    if isinstance(node, list):
        if last == "-":
            node.append(value)
        elif operation["op"] == "add":
            node.insert(int(last), value)
        else:
            node[int(last)] = value
    else:
        if operation["op"] == "replace" and last not in node:
            raise KeyError(f"replace of a missing key {operation['path']}")
        node[last] = value


def _rename_configmap_refs(obj: dict[str, Any], original: str, generated: str) -> None:
    # kustomize's name references from a pod template to a ConfigMap (the ones a Deployment can hold).
    if obj["kind"] not in ("Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"):
        return
    spec = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef")
            if ref and ref.get("name") == original:
                ref["name"] = generated
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref and ref.get("name") == original:
                ref["name"] = generated
    for volume in spec.get("volumes", []):
        ref = volume.get("configMap")
        if ref and ref.get("name") == original:
            ref["name"] = generated
