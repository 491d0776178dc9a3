"""Validates an SBOM `periscope sbom` wrote, with the formats' own tools from PyPI:
cyclonedx-python-lib (the official CycloneDX 1.6 JSON schema, strict) or
spdx-tools (SPDX 2.3 JSON parsed into its model and validated against the
specification's rules). Every purl is also parsed with packageurl-python and
must be in its canonical form.

Usage: sbom_validate.py cyclonedx|spdx FILE
Prints one JSON object: {"errors": [...], "purls": N, "noncanonical": [...], ...}.
"""

import json
import sys

from packageurl import PackageURL


def purls_of_cyclonedx(doc):
    out = []

    def walk(components):
        for c in components:
            if "purl" in c:
                out.append(c["purl"])
            walk(c.get("components", []))

    walk(doc.get("components", []))
    if "purl" in doc.get("metadata", {}).get("component", {}):
        out.append(doc["metadata"]["component"]["purl"])
    return out


def purls_of_spdx(doc):
    return [
        r["referenceLocator"]
        for p in doc.get("packages", [])
        for r in p.get("externalRefs", [])
        if r.get("referenceType") == "purl"
    ]


def main():
    kind, path = sys.argv[1], sys.argv[2]
    text = open(path, encoding="utf-8").read()
    doc = json.loads(text)
    result = {"errors": []}
    if kind == "cyclonedx":
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator

        errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text, all_errors=True)
        result["errors"] = [str(e) for e in (errors or [])]
        result["validator"] = "cyclonedx-python-lib JsonStrictValidator, CycloneDX 1.6"
        purls = purls_of_cyclonedx(doc)
    else:
        from spdx_tools.spdx.parser.parse_anything import parse_file
        from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

        from spdx_tools.spdx.parser.error import SPDXParsingError

        try:
            parsed = parse_file(path)
        except SPDXParsingError as e:
            result["errors"] = ["parse: " + m for m in e.get_messages()]
            print(json.dumps(result))
            return
        messages = validate_full_spdx_document(parsed)
        result["errors"] = [m.validation_message for m in messages]
        result["validator"] = "spdx-tools parse_file + validate_full_spdx_document, " + parsed.creation_info.spdx_version
        result["packages"] = len(parsed.packages)
        result["relationships"] = len(parsed.relationships)
        purls = purls_of_spdx(doc)
    result["purls"] = len(purls)
    result["noncanonical"] = [p for p in purls if PackageURL.from_string(p).to_string() != p][:20]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
