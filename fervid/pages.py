"""Pages to review a result, each one self-contained HTML file that works offline from the file
system (styles and scripts inline, no CDN; the video and pictures referenced beside it):

- :func:`write_video_page`: the annotated video; under it one timeline per person (when in
  view, and the emotion episodes in their colours) with a playhead that follows the video; a
  click on a timeline seeks the video there; the people table with their faces.
- :func:`write_photos_page`: a photo folder's faces with their labels, filterable by emotion.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pandas as pd

from .emotions import color_for
from .face_pose import AWAY_PITCH, AWAY_YAW
from .outputs import atomic_path
from .persons import WEAK_JOIN
from .rows import cell_text, file_of, read_csv_chunks

if TYPE_CHECKING:  # the page needs no image code
    from .face_pictures import FaceThumbs

GENERATOR = '<meta name="generator" content="fervid">'

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}
header,main{max-width:1100px;margin:0 auto;padding:12px 16px}
h1{font-size:18px;margin:8px 0}
video{width:100%;max-height:60vh;background:#000;display:block}
.row{display:flex;align-items:center;gap:8px;margin:4px 0}
.who{width:110px;display:flex;align-items:center;gap:6px;font-weight:600}
.who img{width:36px;height:36px;object-fit:cover;border-radius:4px}
.timeline{position:relative;flex:1;height:28px;background:#e4e4e0;cursor:pointer;
border-radius:3px;overflow:hidden}
.seen,.seen-key{background:repeating-linear-gradient(135deg,#d6d6d0 0 2px,#f7f7f4 2px 7px)}
.seen{position:absolute;top:0;bottom:0}
.ep{position:absolute;top:4px;bottom:4px;border-radius:2px}
.mk{position:absolute;height:3px;pointer-events:none}
.mk.speaking,i.mk-key.speaking{bottom:0;background:#222}
.mk.away,i.mk-key.away{top:0;background:repeating-linear-gradient(90deg,#222 0 3px,#0000 3px 6px)}
.legend i.mk-key{width:18px;height:3px;vertical-align:3px}
.playhead{position:absolute;top:0;bottom:0;width:2px;background:#d00;pointer-events:none}
.legend span{display:inline-block;margin-right:10px;white-space:nowrap}
.legend i,i.key{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px;
vertical-align:-1px}
i.key{outline:1px solid #0002}
.legend i.seen-key{width:18px;outline:1px solid #bbb}
.legend i.head-key{width:2px;background:#d00}
.axis .who{visibility:hidden}
.ticks{position:relative;flex:1;height:18px;font-size:11px;color:#555;border-top:1px solid #999}
.tick{position:absolute;top:0;height:5px;border-left:1px solid #999}
.tick span{position:absolute;top:4px;transform:translateX(-50%);white-space:nowrap}
.tick:first-of-type span{transform:none}
.tick.last span{transform:translateX(-100%)}
.pointer{position:absolute;top:-2px;transform:translateX(-50%);background:#222;color:#fff;
padding:0 4px;border-radius:3px;font-size:11px;white-space:nowrap;pointer-events:none}
.note{background:#fff4d6;border:1px solid #e6c86e;padding:6px 8px;border-radius:4px;margin:8px 0}
.scroll{overflow-x:auto;max-width:100%}
@media (max-width:560px){.who{width:64px;font-size:12px}.who img{display:none}}
table{border-collapse:collapse;margin-top:12px;background:#fff}
th.group{text-align:center;font-weight:normal;color:#555;border-bottom:1px solid #bbb}
td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}
td img{width:64px;height:64px;object-fit:cover;border-radius:4px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border-radius:6px;padding:6px;width:132px;font-size:12px}
.crop{position:relative;width:120px;height:120px;overflow:hidden;background:#ddd}
.crop img{position:absolute;max-width:none}.crop img.thumb{position:static;width:100%;height:100%}
.card b{display:block;margin-top:4px}
.hidden{display:none}
.hint,.caption{color:#555;margin-top:10px}
.weak{color:#a33;font-size:12px;white-space:nowrap}
code{background:#ecece8;padding:1px 4px;border-radius:3px}
"""

VIDEO_SCRIPT = """
const data = JSON.parse(document.getElementById('data').textContent);
const video = document.getElementById('video');
const duration = () => (isFinite(video.duration) && video.duration > 0) ? video.duration
                                                                         : data.duration;
function place(el, a, b) {
  const d = duration();
  el.style.left = (100 * a / d) + '%';
  el.style.width = Math.max(0.15, 100 * (b - a) / d) + '%';
}
function nice(d, px) {  // seconds between ticks: about one tick per 80 px
  const want = d / Math.max(1, px / 80);
  for (const s of [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600])
    if (s >= want) return s;
  return 3600 * Math.ceil(want / 3600);
}
function clock(t, step) {
  const m = Math.floor(t / 60), sec = t - 60 * m;
  const ss = step < 1 ? sec.toFixed(1) : String(Math.round(sec));
  return m ? `${m}:${ss.padStart(step < 1 ? 4 : 2, '0')}` : `${ss} s`;
}
function axis() {
  const ax = document.getElementById('ticks');
  if (!ax) return;
  ax.querySelectorAll('.tick').forEach(e => e.remove());
  const d = duration(), step = nice(d, ax.clientWidth);
  for (let k = 0; k * step <= d + 1e-9; k++) {
    const t = k * step, tick = document.createElement('div');
    tick.className = 'tick'; tick.dataset.t = t.toFixed(3);
    tick.style.left = (100 * t / d) + '%';
    if ((k + 1) * step > d + 1e-9 && k) tick.classList.add('last');
    const label = document.createElement('span'); label.textContent = clock(t, step);
    tick.appendChild(label); ax.appendChild(tick);
  }
}
function pointerAt(x) {  // the time under the pointer, shown on the axis
  const ax = document.getElementById('ticks'), p = document.getElementById('pointer');
  if (x === null) { p.hidden = true; return; }
  const r = ax.getBoundingClientRect(), f = Math.max(0, Math.min(1, (x - r.left) / r.width));
  p.hidden = false; p.style.left = (100 * f) + '%';
  p.textContent = clock(f * duration(), 0.1);
}
function noVideo() {
  const note = document.getElementById('novideo');
  note.hidden = false;
  note.textContent = `The video (${decodeURIComponent(video.getAttribute('src'))}) ` +
    'cannot be played from here: it is not beside this page. The timelines span ' +
    (data.duration_from === 'video' ? `the video's length as analysed (${data.duration} s).`
                                    : `the rows' own times (${data.duration} s).`);
}
function draw() {
  for (const tl of document.querySelectorAll('.timeline')) {
    const p = data.people[tl.dataset.person];
    tl.querySelectorAll('.seen,.ep,.mk').forEach(e => e.remove());
    for (const [a, b] of p.seen) {
      const s = document.createElement('div'); s.className = 'seen'; place(s, a, b);
      tl.insertBefore(s, tl.firstChild);
    }
    for (const [kind, stretches] of Object.entries(p.marks || {})) {
      for (const [a, b] of stretches) {
        const m = document.createElement('div'); m.className = 'mk ' + kind;
        const what = kind === 'away' ? 'looking away' : 'speaking';
        m.title = `${what} ${a.toFixed(2)}-${b.toFixed(2)} s`;
        place(m, a, b); tl.appendChild(m);
      }
    }
    for (const e of p.episodes) {
      const s = document.createElement('div'); s.className = 'ep';
      s.style.background = data.colors[e.emotion];
      s.title = `${e.emotion} ${e.start_s.toFixed(2)}-${e.end_s.toFixed(2)} s, peak ${e.peak}`;
      place(s, e.start_s, e.end_s); tl.appendChild(s);
    }
  }
}
function playhead() {
  const x = (100 * video.currentTime / duration()) + '%';
  document.querySelectorAll('.playhead').forEach(p => { p.style.left = x; });
}
for (const tl of document.querySelectorAll('.timeline')) {
  tl.addEventListener('mousemove', ev => pointerAt(ev.clientX));
  tl.addEventListener('mouseleave', () => pointerAt(null));
  tl.addEventListener('click', ev => {
    const r = tl.getBoundingClientRect();
    video.currentTime = Math.max(0, Math.min(1, (ev.clientX - r.left) / r.width)) * duration();
    playhead();
  });
}
video.addEventListener('loadedmetadata', () => { draw(); axis(); playhead(); });
video.addEventListener('error', noVideo);
if (video.error && video.getAttribute('src')) noVideo();
window.addEventListener('resize', axis);
video.addEventListener('timeupdate', playhead);
video.addEventListener('seeked', playhead);
(function tick() { if (!video.paused) playhead(); requestAnimationFrame(tick); })();
draw(); axis(); playhead();
"""

PHOTOS_SCRIPT = """
for (const img of document.querySelectorAll('.card img[data-box]')) {
  const fit = () => {
    const [x1, y1, x2, y2] = JSON.parse(img.dataset.box);
    const side = Math.max(x2 - x1, y2 - y1, 1), k = 120 / side;
    img.style.width = (img.naturalWidth * k) + 'px';
    img.style.left = (-(x1 + x2 - side) / 2 * k) + 'px';
    img.style.top = (-(y1 + y2 - side) / 2 * k) + 'px';
  };
  if (img.complete && img.naturalWidth) fit(); else img.addEventListener('load', fit);
}
const pick = document.getElementById('filter');
pick.addEventListener('change', () => {
  for (const card of document.querySelectorAll('.card'))
    card.classList.toggle('hidden', pick.value !== '' && card.dataset.emotion !== pick.value);
  document.getElementById('count').textContent =
    document.querySelectorAll('.card:not(.hidden)').length;
});
"""


def is_fervid_page(path: str | os.PathLike) -> bool:
    """A page fervid wrote (its generator tag near the top)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return 'content="fervid"' in fh.read(2000)
    except (OSError, UnicodeDecodeError):
        return False


def _rel(target: str | os.PathLike, page: Path) -> str:
    """A local file as a link from the page: relative, starting ``./`` and percent-encoded, so
    that no name (``https:example.com.mp4``, ``a#b``, ``100%.jpg``) reads as another place."""
    rel = os.path.relpath(Path(target).resolve(), page.parent.resolve())
    return html.escape("./" + quote(Path(rel).as_posix(), safe="/"))


def _legend(classes, max_gap: float | None = None, marks: bool = False) -> str:
    """Every band's meaning: each emotion's colour (an episode), in view, the playhead, and
    with ``marks`` the speaking and looking-away strips."""
    items = "".join(
        f'<span><i style="background:{_hex(c)}"></i>{html.escape(c)}</span>' for c in classes
    )
    if max_gap is not None:
        bridged = f" (an episode bridges gaps of up to {max_gap:g} s)"
        items = (
            f"<span>episodes{bridged}:</span>{items}"
            '<span><i class="seen-key"></i>in view: detected on consecutive analysed frames'
            '</span><span><i class="head-key"></i>playhead</span>'
        )
    if marks:
        items += (
            '<span><i class="mk-key speaking"></i>speaking</span>'
            f'<span title="turned more than {AWAY_YAW:g} degrees aside or {AWAY_PITCH:g} up or '
            'down"><i class="mk-key away"></i>looking away</span>'
        )
    return f'<div class="legend">{items}</div>'


def _any_marks(marks) -> bool:
    return any(v for per in (marks or {}).values() for v in per.values())


def _hex(emotion: str) -> str:
    r, g, b = color_for(emotion)
    return f"#{r:02x}{g:02x}{b:02x}"


def _page(title: str, body: str, script: str, data: dict | None = None) -> str:
    blob = ""
    if data is not None:
        # no "<" or ">" reaches the HTML parser: a name such as "<!--<script>" cannot end
        # the data block or swallow the page's own script
        text = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e")
        blob = f'<script type="application/json" id="data">{text}</script>'
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{GENERATOR}'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}{blob}<script>{script}</script></body></html>\n"
    )


def write_video_page(
    path: str | os.PathLike,
    *,
    video: str | os.PathLike | None,
    people: pd.DataFrame,
    episodes: pd.DataFrame,
    seen: dict[int, list[list[float]]],
    classes,
    faces: dict[int, Path] | None = None,
    duration: float = 0.0,
    title: str = "",
    table: str | os.PathLike | None = None,
    max_gap: float | None = None,
    marks: dict[int, dict[str, list]] | None = None,
) -> Path:
    """The review page of a video (see the module's description), written atomically;
    with ``table`` (the video's CSV) it says how to correct its people. ``duration``: the
    video's (0 when not known: the rows' own times are used, and the page says so);
    ``max_gap``: the longest gap an episode bridges, for the legend; ``marks``: per person,
    the stretches speaking and looking away (:class:`fervid.persons.Takeaway`)."""
    path = Path(path)
    faces = faces or {}
    ends = [b for stretches in seen.values() for _, b in stretches]
    ends += episodes["end_s"].tolist() if len(episodes) else []
    known = duration > 0
    data = {
        "duration": round(duration if known else max(ends, default=0.0), 3) or 0.001,
        "duration_from": "video" if known else "rows",
        "colors": {c: _hex(c) for c in classes},
        "people": {},
    }
    rows = []
    for p in people.itertuples(index=False):
        pid = int(p.person)
        eps = episodes[episodes["person"] == pid]
        data["people"][str(pid)] = {
            "seen": seen.get(pid, []),
            "marks": (marks or {}).get(pid, {}),
            "episodes": eps[["emotion", "start_s", "end_s", "peak"]].to_dict("records"),
        }
        img = f'<img src="{_rel(faces[pid], path)}" alt="">' if pid in faces else ""
        rows.append(
            f'<div class="row"><div class="who">{img}P{pid}</div>'
            f'<div class="timeline" data-person="{pid}"><div class="playhead"></div></div></div>'
        )
    title = title or (Path(video).name if video is not None else path.name)
    src = f' src="{_rel(video, path)}"' if video is not None else ""
    note = (
        "" if video is not None else
        '<p class="note">No video was found beside the table: the timelines span the '
        f"rows' own times (0-{data['duration']} s).</p>"
    )  # fmt: skip
    axis = (
        '<div class="row axis"><div class="who"></div><div class="ticks" id="ticks">'
        '<div class="pointer" id="pointer" hidden></div></div></div>'
    )
    timelines = "".join(rows) + axis if rows else "<p>No faces were found.</p>"
    body = (
        f"<header><h1>{html.escape(title)}</h1></header><main>"
        f'<video id="video" controls preload="metadata"{src}></video>'
        f'{note}<p class="note" id="novideo" hidden></p>'
        f"{_legend(classes, max_gap, _any_marks(marks))}{timelines}"
        f"{_people_table(people, faces, path, classes)}"
        f"{_regroup_hint(table) if table is not None and len(people) else ''}</main>"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(_page(title, body, VIDEO_SCRIPT, data), "utf-8")
    return path


def _regroup_hint(table) -> str:
    """How to correct the people (``fervid regroup``), with the table's name."""
    name = html.escape(Path(table).name)
    return (
        f'<p class="hint">One person in two rows? <code>fervid regroup {name} --same P,Q</code>'
        f". Two people in one row? <code>fervid regroup {name} --apart P@S1,P@S2</code> "
        "(the person and a second where each of the two is seen: the player shows the time, "
        "a click on a timeline goes there); where both are in one stretch of the timeline, "
        "it is parted where the face changes between them, or at <code>--cut SECONDS</code>."
        "</p>"
    )


def _people_table(people: pd.DataFrame, faces: dict, page: Path, classes) -> str:
    if not len(people):
        return ""
    head = (
        f'<tr><th colspan="6"></th><th colspan="{len(classes)}" class="group">share of the '
        "visible time with this emotion on top</th></tr>"
        "<tr><th>person</th><th>face</th><th>first seen (s)</th><th>last seen (s)</th>"
        '<th>visible (s)</th><th title="the emotion on top for the most visible time">'
        "dominant</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in classes) + "</tr>"
    )
    body = []
    for p in people.to_dict("records"):
        pid = int(p["person"])
        img = f'<img src="{_rel(faces[pid], page)}" alt="">' if pid in faces else ""
        shares = "".join(f"<td>{p[f'share_{c}']:.0%}</td>" for c in classes)
        body.append(
            f"<tr><td>P{pid}{_weak_join(p)}</td><td>{img}</td><td>{p['first_s']:.2f}</td>"
            f"<td>{p['last_s']:.2f}</td><td>{p['seconds_visible']:.1f}</td>"
            f"<td>{html.escape(p['dominant'])}</td>{shares}</tr>"
        )
    caption = (
        "<p class=\"caption\">The emotions' columns: the share of the person's visible time with "
        "that emotion on top (they sum to 100%); the mean probabilities are in the people "
        "table (VIDEO.fervid.people.csv).</p>"
    )
    if people["weakest_join"].lt(WEAK_JOIN).any():
        caption += (
            '<p class="caption"><span class="weak">weak join at S</span>: the face seen from S '
            "seconds on was joined to this person on a weak match (its person_confidence in "
            "brackets): look at it there; if it is someone else, say so with --apart below.</p>"
        )
    return f'<div class="scroll"><table>{head}{"".join(body)}</table></div>{caption}'


def _weak_join(person: dict) -> str:
    """A line under a person's name where one of its tracks joined it on a weak match."""
    conf, at = person.get("weakest_join"), person.get("weakest_join_s")
    if conf is None or not conf < WEAK_JOIN:  # NaN: one track, or none measured
        return ""
    return f'<div class="weak">weak join at {at:.2f} s ({conf:.2f})</div>'


def write_photos_page(
    path: str | os.PathLike,
    table: str | os.PathLike,
    folder: str | os.PathLike,
    *,
    title="",
    thumbs: FaceThumbs | None = None,
) -> Path:
    """The review page of a photo scan: one card per face (its picture, its emotion and
    confidence), a menu to show one emotion only. ``table``: the scan's CSV (streamed);
    ``folder``: what its paths are relative to; ``thumbs``: the faces' pictures cut during the
    scan (:class:`fervid.face_pictures.FaceThumbs`); a face without one is shown as its
    photo, cut to the face by the page. Pictures of rows no longer in the table are
    removed."""
    path, folder = Path(path), Path(folder)
    cards, emotions, used = [], set(), set()
    for part in read_csv_chunks(table, 100_000, keep_default_na=False):
        for r in part[part["emotion"] != ""].itertuples(index=False):
            emotions.add(r.emotion)
            name = cell_text(str(r.path))
            thumb = thumbs.get(name, int(r.face)) if thumbs is not None else None
            if thumb is not None:
                used.add(thumb)
                pic = f'<img class="thumb" src="{_rel(thumb, path)}" alt="" loading="lazy">'
            else:
                box = json.dumps([float(r.x1), float(r.y1), float(r.x2), float(r.y2)])
                src = _rel(folder / file_of(name), path)  # a frame: its file
                pic = f'<img src="{src}" alt="" loading="lazy" data-box=\'{box}\'>'
            cards.append(
                f'<div class="card" data-emotion="{html.escape(r.emotion)}">'
                f'<div class="crop">{pic}</div><b><i class="key" '
                f'style="background:{_hex(r.emotion)}"></i>'
                f"{html.escape(r.emotion)} {float(r.confidence):.2f}</b>"
                f"{html.escape(str(r.path))} #{int(r.face)}</div>"
            )
    if thumbs is not None:
        thumbs.keep_only(used)
    options = "".join(
        f'<option value="{html.escape(e)}">{html.escape(e)}</option>' for e in sorted(emotions)
    )
    body = (
        f"<header><h1>{html.escape(title or folder.name)}</h1>"
        f'<label>Emotion <select id="filter"><option value="">all</option>{options}</select>'
        f'</label> <span id="count">{len(cards)}</span> faces</header>'
        f'<main><div class="cards">{"".join(cards)}</div></main>'
    )
    with atomic_path(path) as tmp:
        tmp.write_text(_page(title or folder.name, body, PHOTOS_SCRIPT), "utf-8")
    return path
