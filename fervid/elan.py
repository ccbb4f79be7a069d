"""Episodes for the annotation tools of the field: ELAN's EAF 3.0 (one tier per person, the
episodes as annotations, the media linked by relative path) and a tab-separated table in the
tier / begin / end / annotation shape that ELAN's and BORIS's delimited-text imports read."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import pandas as pd

from .outputs import atomic_path
from .rows import write_csv

MIME = {
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".mpg": "video/mpeg",
}


def tier_name(person: int) -> str:
    return f"person {int(person)}"


def _xml(text: str) -> str:
    return quoteattr(str(text))[1:-1]


def eaf_text(
    episodes: pd.DataFrame, media: str | os.PathLike | None, where: Path, persons=()
) -> str:
    """The EAF document (text) of ``episodes`` (:func:`fervid.persons.episodes`), one tier
    per person (those of ``persons`` and of the episodes, ordered; a person without episodes
    has an empty tier), the ``media`` file linked by its path relative to ``where`` (the
    EAF's folder) and absolute."""
    slots, tiers = [], {int(p): [] for p in persons}
    for k, e in enumerate(episodes.itertuples(index=False)):
        a, b = int(round(e.start_s * 1000)), int(round(e.end_s * 1000))
        slots += [(f"ts{2 * k + 1}", a), (f"ts{2 * k + 2}", b)]
        tiers.setdefault(int(e.person), []).append((k + 1, 2 * k + 1, 2 * k + 2, e.emotion))
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<ANNOTATION_DOCUMENT AUTHOR="fervid" DATE="{now}" FORMAT="3.0" VERSION="3.0" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:noNamespaceSchemaLocation="http://www.mpi.nl/tools/elan/EAFv3.0.xsd">',
        '  <HEADER MEDIA_FILE="" TIME_UNITS="milliseconds">',
    ]
    if media is not None:
        media = Path(media)
        rel = os.path.relpath(media.resolve(), where.resolve())
        relative = "./" + quote(Path(rel).as_posix(), safe="/")  # percent-encoded, as a URL
        mime = MIME.get(media.suffix.lower(), "video/*")
        out.append(
            f'    <MEDIA_DESCRIPTOR MEDIA_URL="{_xml(media.resolve().as_uri())}" '
            f'MIME_TYPE="{mime}" RELATIVE_MEDIA_URL="{_xml(relative)}"/>'
        )
    out += [
        f'    <PROPERTY NAME="lastUsedAnnotationId">{len(episodes)}</PROPERTY>',
        "  </HEADER>",
        "  <TIME_ORDER>",
        *(f'    <TIME_SLOT TIME_SLOT_ID="{i}" TIME_VALUE="{v}"/>' for i, v in slots),
        "  </TIME_ORDER>",
    ]
    for person in sorted(tiers):
        out.append(f'  <TIER LINGUISTIC_TYPE_REF="emotion" TIER_ID="{tier_name(person)}">')
        for aid, s1, s2, value in tiers[person]:
            out += [
                "    <ANNOTATION>",
                f'      <ALIGNABLE_ANNOTATION ANNOTATION_ID="a{aid}" '
                f'TIME_SLOT_REF1="ts{s1}" TIME_SLOT_REF2="ts{s2}">',
                f"        <ANNOTATION_VALUE>{_xml(value)}</ANNOTATION_VALUE>",
                "      </ALIGNABLE_ANNOTATION>",
                "    </ANNOTATION>",
            ]
        out.append("  </TIER>")
    out += [
        '  <LINGUISTIC_TYPE GRAPHIC_REFERENCES="false" LINGUISTIC_TYPE_ID="emotion" '
        'TIME_ALIGNABLE="true"/>',
        "</ANNOTATION_DOCUMENT>",
        "",
    ]
    return "\n".join(out)


def write_eaf(
    episodes: pd.DataFrame,
    path: str | os.PathLike,
    *,
    media: str | os.PathLike | None = None,
    persons=(),
) -> Path:
    """Write ``episodes`` as an ELAN document (EAF 3.0) at ``path`` (atomically): one tier
    per person (``persons`` too, when given: a person without episodes has an empty tier)."""
    path = Path(path)
    text = eaf_text(episodes, media, path.parent, persons)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_episodes_tsv(episodes: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Episodes as tab-separated ``tier, begin, end, annotation`` (seconds, to the
    millisecond), with a header: ELAN's "Import CSV/Tab-delimited Text File" and BORIS's
    import of tabular events read it."""
    path = Path(path)
    table = pd.DataFrame(
        {
            "tier": [tier_name(p) for p in episodes["person"]],
            "begin": episodes["start_s"].map(lambda v: f"{v:.3f}"),
            "end": episodes["end_s"].map(lambda v: f"{v:.3f}"),
            "annotation": episodes["emotion"],
        }
    )
    with atomic_path(path) as tmp:
        write_csv(table, tmp, sep="\t", index=False)
    return path
