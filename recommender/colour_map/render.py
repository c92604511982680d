"""Chain pictures: one self-contained SVG per chain, embedded in a self-contained HTML page.

Pure string building, no external assets. Stages run left to right (上游 → 中游 → 下游); a stage
with edges between its own nodes gets several sub-columns (longest path inside the stage). Inside a
column, nodes are ordered by the barycentre of their neighbours (a few sweeps of the Sugiyama
heuristic) so that arrows cross less. Every node is an ``<a class="node" data-node-id=…>`` with a
``<title>`` tooltip holding the reason, so a web page can make it clickable.
"""

from __future__ import annotations

import html
import json
import math
import unicodedata
from dataclasses import dataclass
from typing import Final

import pandas as pd

FILLS: Final = {"red": "#d7443e", "blue": "#2f6db5", "green": "#2e9a58"}
LEGEND: Final = {"red": "红色：缺失，需补链", "blue": "蓝色：薄弱，需强链", "green": "绿色：优势，需延链固链"}
STAGE_LABELS: Final = {"upstream": "上游", "midstream": "中游", "downstream": "下游"}
STAGE_ORDER: Final = ("upstream", "midstream", "downstream")
FONT: Final = "'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei','PingFang SC','Heiti SC',sans-serif"

BOX_W: Final = 184
BOX_H: Final = 66
COL_GAP: Final = 84
ROW_GAP: Final = 20
MARGIN: Final = 24
PAD_X: Final = MARGIN + COL_GAP // 3  # room for the stage bands around the outer columns
HEADER_H: Final = 44
LEGEND_H: Final = 48
NAME_SIZE: Final = 15
STAT_SIZE: Final = 12
REQUIRED: Final = ["node_id", "name", "stage", "colour", "reason"]


@dataclass(frozen=True)
class _Box:
    node_id: str
    col: int
    x: float
    y: float


# ---------------------------------------------------------------- layout
def layout_columns(node_ids: list[str], stages: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Global column of each node: stage offset + longest same-stage path leading to it."""
    stage_of = dict(zip(node_ids, stages, strict=True))
    inner = [(a, b) for a, b in edges if a in stage_of and b in stage_of and stage_of[a] == stage_of[b]]
    depth = {n: 0 for n in node_ids}
    for _ in range(len(node_ids)):  # relax; chains are acyclic so this settles
        changed = False
        for a, b in inner:
            if depth[b] < depth[a] + 1:
                depth[b], changed = depth[a] + 1, True
        if not changed:
            break
    col: dict[str, int] = {}
    offset = 0
    for s in STAGE_ORDER + tuple(sorted(set(stages) - set(STAGE_ORDER))):
        members = [n for n in node_ids if stage_of[n] == s]
        if not members:
            continue
        for n in members:
            col[n] = offset + depth[n]
        offset += max(depth[n] for n in members) + 1
    return col


def order_rows(
    node_ids: list[str], col: dict[str, int], edges: list[tuple[str, str]], sweeps: int = 4
) -> list[list[str]]:
    """Nodes of each column, ordered by the barycentre of their neighbours (input order breaks ties)."""
    n_cols = max(col.values()) + 1 if col else 0
    columns = [[n for n in node_ids if col[n] == c] for c in range(n_cols)]
    preds: dict[str, list[str]] = {n: [] for n in node_ids}
    succs: dict[str, list[str]] = {n: [] for n in node_ids}
    for a, b in edges:
        if a in preds and b in preds:
            succs[a].append(b)
            preds[b].append(a)
    for sweep in range(sweeps):
        forward = sweep % 2 == 0
        rng = range(1, n_cols) if forward else range(n_cols - 2, -1, -1)
        for c in rng:
            pos = {n: i / max(len(columns[col[n]]), 1) for cc in columns for i, n in enumerate(cc)}
            neigh = preds if forward else succs
            keyed = []
            for i, n in enumerate(columns[c]):
                ref = [pos[m] for m in neigh[n] if col[m] != c]
                keyed.append((sum(ref) / len(ref) if ref else pos[n], i, n))
            columns[c] = [n for _, _, n in sorted(keyed)]
    return columns


def _text_width(s: str, size: float) -> float:
    return sum(size if unicodedata.east_asian_width(ch) in "WF" else 0.58 * size for ch in s)


def wrap_label(s: str, width: float, size: float, max_lines: int = 2) -> list[str]:
    """Split ``s`` into at most ``max_lines`` lines that fit ``width`` px (ellipsis when cut)."""
    lines: list[str] = []
    cur = ""
    for ch in s:
        if _text_width(cur + ch, size) > width:
            lines.append(cur)
            cur = ch
        else:
            cur += ch
    lines.append(cur)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and _text_width(last + "…", size) > width:
            last = last[:-1]
        lines = lines[: max_lines - 1] + [last + "…"]
    return lines


# ---------------------------------------------------------------- SVG
def render_chain_svg(chain_map_rows: pd.DataFrame, edges: pd.DataFrame, link: str = "#{node_id}") -> str:
    """The chain as one SVG document (string).

    Args:
        chain_map_rows: map rows of one chain (``colour_map.MAP_COLUMNS``; needs ``REQUIRED``).
        edges: ``src_node, dst_node`` rows (``features.chains.edges_frame``); edges to nodes not in
            ``chain_map_rows`` are skipped.
        link: each node's ``href``, with ``{node_id}`` replaced (e.g. ``/nodes/{node_id}`` for the
            web page); default an in-page anchor.
    """
    missing = [c for c in REQUIRED if c not in chain_map_rows.columns]
    if missing:
        raise ValueError(f"chain map rows are missing required columns {missing}; got {list(chain_map_rows.columns)}")
    rows = chain_map_rows.reset_index(drop=True)
    ids = [str(x) for x in rows["node_id"]]
    known = set(ids)
    pairs = [(str(a), str(b)) for a, b in zip(edges["src_node"], edges["dst_node"], strict=True)]
    pairs = [(a, b) for a, b in pairs if a in known and b in known]
    col = layout_columns(ids, [str(s) for s in rows["stage"]], pairs)
    columns = order_rows(ids, col, pairs)
    boxes, width, height = _place(columns)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chain-map" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" font-family="{FONT}" role="img">',
        _defs(),
        *_stage_bands(rows, col, boxes, height),
        '<g class="edges">',
        *_edge_paths(pairs, boxes),
        "</g>",
        '<g class="nodes">',
        *[_node(r, boxes[str(r["node_id"])], link) for _, r in rows.iterrows()],
        "</g>",
        _legend(height),
        "</svg>",
    ]
    return "\n".join(parts)


def _place(columns: list[list[str]]) -> tuple[dict[str, _Box], float, float]:
    tallest = max((len(c) for c in columns), default=0)
    inner_h = tallest * BOX_H + max(tallest - 1, 0) * ROW_GAP
    boxes: dict[str, _Box] = {}
    for c, members in enumerate(columns):
        col_h = len(members) * BOX_H + max(len(members) - 1, 0) * ROW_GAP
        y0 = MARGIN + HEADER_H + (inner_h - col_h) / 2
        for i, n in enumerate(members):
            boxes[n] = _Box(n, c, PAD_X + c * (BOX_W + COL_GAP), y0 + i * (BOX_H + ROW_GAP))
    width = 2 * PAD_X + len(columns) * BOX_W + max(len(columns) - 1, 0) * COL_GAP
    height = MARGIN + HEADER_H + inner_h + 16 + LEGEND_H + MARGIN
    return boxes, max(width, 560.0), height


def _defs() -> str:
    return (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#5b6470"/>'
        "</marker></defs>\n"
        "<style>.node rect{stroke:#ffffff;stroke-width:1.5}.node:hover rect{stroke:#1d2430;stroke-width:3}"
        ".node{cursor:pointer}.edges path{fill:none;stroke:#8a93a0;stroke-width:1.4;opacity:.85}</style>"
    )


def _stage_bands(rows: pd.DataFrame, col: dict[str, int], boxes: dict[str, _Box], height: float) -> list[str]:
    out = []
    for i, s in enumerate(STAGE_ORDER):
        cols = sorted({col[str(n)] for n, st in zip(rows["node_id"], rows["stage"], strict=True) if st == s})
        if not cols:
            continue
        x0 = PAD_X + cols[0] * (BOX_W + COL_GAP) - COL_GAP / 3
        x1 = PAD_X + cols[-1] * (BOX_W + COL_GAP) + BOX_W + COL_GAP / 3
        fill = "#f3f5f8" if i % 2 == 0 else "#e9edf2"
        band_h = height - 2 * MARGIN - LEGEND_H
        out.append(
            f'<g class="stage" data-stage="{s}"><rect x="{x0:.1f}" y="{MARGIN:.1f}" width="{x1 - x0:.1f}" '
            f'height="{band_h:.1f}" rx="10" fill="{fill}"/>'
            f'<text x="{(x0 + x1) / 2:.1f}" y="{MARGIN + 28:.1f}" text-anchor="middle" font-size="17" '
            f'font-weight="bold" fill="#3a4350">{STAGE_LABELS[s]}</text></g>'
        )
    return out


def _anchors(pairs: list[tuple[str, str]], boxes: dict[str, _Box]) -> dict[tuple[str, str], tuple[float, float]]:
    """Spread the ends of several edges along a box side, sorted by the other end's height."""
    out_of: dict[str, list[tuple[str, str]]] = {}
    in_of: dict[str, list[tuple[str, str]]] = {}
    for p in pairs:
        out_of.setdefault(p[0], []).append(p)
        in_of.setdefault(p[1], []).append(p)
    src_y: dict[tuple[str, str], float] = {}
    dst_y: dict[tuple[str, str], float] = {}
    for ends, key, store in ((out_of, 1, src_y), (in_of, 0, dst_y)):
        for n, ps in ends.items():
            ps = sorted(ps, key=lambda p, k=key: boxes[p[k]].y)  # type: ignore[misc]
            for i, p in enumerate(ps):
                store[p] = boxes[n].y + BOX_H * (0.25 + 0.5 * (i + 1) / (len(ps) + 1))
    return {p: (src_y[p], dst_y[p]) for p in pairs}


def _gap_centres(boxes: dict[str, _Box]) -> dict[int, list[float]]:
    """Per column, the y of every free lane: above the first box, between boxes, below the last."""
    by_col: dict[int, list[float]] = {}
    for b in boxes.values():
        by_col.setdefault(b.col, []).append(b.y)
    lanes: dict[int, list[float]] = {}
    for c, ys in by_col.items():
        ys.sort()
        inner = [(ys[i] + BOX_H + ys[i + 1]) / 2 for i in range(len(ys) - 1)]
        lanes[c] = [ys[0] - ROW_GAP / 2, *inner, ys[-1] + BOX_H + ROW_GAP / 2]
    return lanes


def _waypoints(sa: _Box, sb: _Box, y1: float, y2: float, lanes: dict[int, list[float]]) -> list[tuple[float, float]]:
    """Points of an edge skipping columns: through the free lane nearest the straight line in each
    column it crosses, so it runs between boxes rather than behind them."""
    x1, x2 = sa.x + BOX_W, sb.x - 2
    points = [(x1, y1)]
    for c in range(sa.col + 1, sb.col):
        xc = PAD_X + c * (BOX_W + COL_GAP)
        t = (xc + BOX_W / 2 - x1) / (x2 - x1)
        want = y1 + t * (y2 - y1)
        lane = min(lanes.get(c, [want]), key=lambda y: abs(y - want))
        points += [(xc - 6, lane), (xc + BOX_W + 6, lane)]
    return [*points, (x2, y2)]


def _path_through(points: list[tuple[float, float]]) -> str:
    """Horizontal-tangent cubic segments between columns, straight runs inside a column."""
    (x0, y0), rest = points[0], points[1:]
    d = [f"M{x0:.1f},{y0:.1f}"]
    for i, (x, y) in enumerate(rest):
        px, py = points[i]
        if i % 2 == 0:  # between columns
            dx = max((x - px) / 2, 20)
            d.append(f"C{px + dx:.1f},{py:.1f} {x - dx:.1f},{y:.1f} {x:.1f},{y:.1f}")
        else:  # across a column, inside its lane
            d.append(f"L{x:.1f},{y:.1f}")
    return " ".join(d)


def _edge_paths(pairs: list[tuple[str, str]], boxes: dict[str, _Box]) -> list[str]:
    anchors = _anchors(pairs, boxes)
    lanes = _gap_centres(boxes)
    out = []
    for a, b in pairs:
        sa, sb = boxes[a], boxes[b]
        y1, y2 = anchors[(a, b)]
        if sb.col > sa.col:
            d = _path_through(_waypoints(sa, sb, y1, y2, lanes))
        else:  # same or earlier column: loop below the boxes
            x1, x2 = sa.x + BOX_W / 2, sb.x + BOX_W / 2
            y1, y2 = sa.y + BOX_H, sb.y + BOX_H + 2
            low = max(y1, y2) + 40
            d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{low:.1f} {x2:.1f},{low:.1f} {x2:.1f},{y2:.1f}"
        out.append(f'<path d="{d}" marker-end="url(#arrow)" data-src="{_e(a)}" data-dst="{_e(b)}"/>')
    return out


def _stat_line(r: pd.Series) -> str:
    n = int(r["n_local"]) if "n_local" in r and pd.notna(r["n_local"]) else None
    lq = float(r["lq"]) if "lq" in r and pd.notna(r["lq"]) else None
    bits = []
    if n is not None:
        bits.append(f"{n}家")
    if lq is not None:
        bits.append(f"区位熵{lq:.2f}")
    if "has_leader" in r and bool(r["has_leader"]):
        bits.append("★链主")
    return " · ".join(bits)


def _node(r: pd.Series, box: _Box, link: str) -> str:
    colour = str(r["colour"])
    fill = FILLS.get(colour, "#9aa3ad")
    name_lines = wrap_label(str(r["name"]), BOX_W - 16, NAME_SIZE)
    stats = _stat_line(r)
    cx = box.x + BOX_W / 2
    text_h = len(name_lines) * (NAME_SIZE + 3) + (STAT_SIZE + 6 if stats else 0)
    y = box.y + (BOX_H - text_h) / 2 + NAME_SIZE
    texts = []
    for line in name_lines:
        texts.append(
            f'<text x="{cx:.1f}" y="{y:.1f}" text-anchor="middle" font-size="{NAME_SIZE}" '
            f'font-weight="bold" fill="#ffffff">{_e(line)}</text>'
        )
        y += NAME_SIZE + 3
    if stats:
        texts.append(
            f'<text x="{cx:.1f}" y="{y + 4:.1f}" text-anchor="middle" font-size="{STAT_SIZE}" '
            f'fill="#ffffff" fill-opacity="0.92">{_e(stats)}</text>'
        )
    nid = _e(str(r["node_id"]))
    return (
        f'<a class="node" href="{_e(link.replace("{node_id}", str(r["node_id"])))}" data-node-id="{nid}" '
        f'data-colour="{_e(colour)}" '
        f'data-name="{_e(str(r["name"]))}" data-reason="{_e(str(r["reason"]))}">'
        f"<title>{_e(str(r['name']))}：{_e(str(r['reason']))}</title>"
        f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}"/>'
        + "".join(texts)
        + "</a>"
    )


def _legend(height: float) -> str:
    y = height - MARGIN - LEGEND_H / 2
    x = float(MARGIN)
    items = []
    for colour, label in LEGEND.items():
        items.append(
            f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="18" height="18" rx="4" fill="{FILLS[colour]}"/>'
            f'<text x="{x + 26:.1f}" y="{y + 5:.1f}" font-size="14" fill="#2b323c">{_e(label)}</text>'
        )
        x += 26 + _text_width(label, 14) + 28
    items.append(
        f'<path d="M{x:.1f},{y:.1f} L{x + 40:.1f},{y:.1f}" stroke="#8a93a0" stroke-width="1.4" '
        f'marker-end="url(#arrow)"/><text x="{x + 50:.1f}" y="{y + 5:.1f}" font-size="14" '
        f'fill="#2b323c">上游→下游供给关系</text>'
    )
    return '<g class="legend">' + "".join(items) + "</g>"


def _e(s: str) -> str:
    return html.escape(s, quote=True)


# ---------------------------------------------------------------- HTML
_PAGE_CSS: Final = f"""
body{{margin:0;padding:20px 28px;font-family:{FONT};color:#1f2630;background:#fff}}
h1{{font-size:22px;margin:0 0 4px}} .sub{{color:#5b6470;margin:0 0 12px}}
.chips span{{display:inline-block;padding:3px 10px;border-radius:12px;color:#fff;margin-right:8px;font-size:14px}}
.map{{overflow-x:auto;border:1px solid #e1e5ea;border-radius:10px;padding:8px;margin:12px 0}}
.map svg{{max-width:100%;height:auto;display:block;margin:0 auto}}
td:nth-child(-n+3),th{{white-space:nowrap}}
#detail{{min-height:44px;padding:10px 14px;border-left:5px solid #9aa3ad;background:#f6f8fa;margin-bottom:14px}}
table{{border-collapse:collapse;width:100%;font-size:14px}}
th,td{{border-bottom:1px solid #e6e9ee;padding:6px 8px;text-align:left;vertical-align:top}}
th{{background:#f3f5f8}} td.num{{text-align:right;white-space:nowrap}}
tr.sel{{background:#fff7d6}} .dot{{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:6px}}
"""

_PAGE_JS: Final = """
(function(){
  var detail=document.getElementById('detail');
  var fills=__FILLS__;
  function pick(id){
    var a=document.querySelector('a.node[data-node-id="'+id+'"]'); if(!a) return;
    detail.style.borderLeftColor=fills[a.dataset.colour]||'#9aa3ad';
    detail.textContent=a.dataset.name+'：'+a.dataset.reason;
    document.querySelectorAll('tr.sel').forEach(function(t){t.classList.remove('sel');});
    var row=document.getElementById('row-'+id); if(row){row.classList.add('sel');}
    window.dispatchEvent(new CustomEvent('sansetu-node',{detail:{nodeId:id}}));
    if(window.parent!==window){window.parent.postMessage({type:'sansetu-node',nodeId:id},'*');}
  }
  document.querySelectorAll('a.node').forEach(function(a){
    a.addEventListener('click',function(e){e.preventDefault();pick(a.dataset.nodeId);});
  });
  if(location.hash){pick(decodeURIComponent(location.hash.slice(1)));}
})();
""".replace("__FILLS__", json.dumps(FILLS))


def _fmt_cny(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    x = float(v)  # type: ignore[arg-type]
    return f"{x / 1e8:.2f}亿元" if x >= 1e8 else f"{x / 1e4:.0f}万元"


def _fmt_lq(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{float(v):.2f}"  # type: ignore[arg-type]


def _fmt_pct(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{float(v) * 100:+.1f}%"  # type: ignore[arg-type]


def _chips(rows: pd.DataFrame) -> str:
    counts = rows["colour"].value_counts()
    return "".join(
        f'<span style="background:{FILLS[c]}">{LEGEND[c].split("：")[0]} {int(counts.get(c, 0))}</span>'
        for c in ("red", "blue", "green")
    )


def _table(rows: pd.DataFrame) -> str:
    head = "<tr><th>环节</th><th>节点</th><th>颜色</th><th>本地企业</th><th>产值</th><th>区位熵</th><th>增长</th><th>原因</th></tr>"
    body = []
    for _, r in rows.iterrows():
        c = str(r["colour"])
        body.append(
            f'<tr id="row-{_e(str(r["node_id"]))}"><td>{STAGE_LABELS.get(str(r["stage"]), _e(str(r["stage"])))}</td>'
            f"<td>{_e(str(r['name']))}</td>"
            f'<td><span class="dot" style="background:{FILLS.get(c, "#9aa3ad")}"></span>{_e(LEGEND.get(c, c)[:2])}</td>'
            f'<td class="num">{int(r["n_local"]) if "n_local" in r and pd.notna(r["n_local"]) else ""}</td>'
            f'<td class="num">{_fmt_cny(r.get("output_value_cny"))}</td>'
            f'<td class="num">{_fmt_lq(r.get("lq"))}</td>'
            f'<td class="num">{_fmt_pct(r.get("growth"))}</td><td>{_e(str(r["reason"]))}</td></tr>'
        )
    return f"<table>{head}{''.join(body)}</table>"


def render_chain_html(chain_map_rows: pd.DataFrame, edges: pd.DataFrame, title: str = "", subtitle: str = "") -> str:
    """A self-contained page: title, colour counts, the SVG, a detail line for the clicked node and
    a table of every node with its numbers and reason."""
    rows = chain_map_rows.reset_index(drop=True)
    title = title or f"{rows['chain_id'].iloc[0] if 'chain_id' in rows and len(rows) else ''}产业链三色图"
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_PAGE_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        + (f'<p class="sub">{_e(subtitle)}</p>' if subtitle else "")
        + f'<div class="chips">{_chips(rows)}</div>'
        f'<div class="map">{render_chain_svg(rows, edges)}</div>'
        '<div id="detail">点击节点查看着色原因</div>'
        f"{_table(rows)}<script>{_PAGE_JS}</script></body></html>\n"
    )


def render_index_html(map_df: pd.DataFrame, chain_names: dict[str, str], subtitle: str = "") -> str:
    """A page linking every chain picture, with each chain's red / blue / green counts."""
    rows = []
    for chain_id, g in map_df.groupby("chain_id", sort=False):
        counts = g["colour"].value_counts()
        cells = "".join(
            f'<td class="num"><span class="dot" style="background:{FILLS[c]}"></span>{int(counts.get(c, 0))}</td>'
            for c in ("red", "blue", "green")
        )
        name = chain_names.get(str(chain_id), str(chain_id))
        rows.append(f'<tr><td><a href="{_e(str(chain_id))}.html">{_e(name)}</a></td><td>{len(g)}</td>{cells}</tr>')
    head = "<tr><th>产业链</th><th>节点数</th><th>红（补链）</th><th>蓝（强链）</th><th>绿（延链固链）</th></tr>"
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8"><title>产业链三色图</title>'
        f"<style>{_PAGE_CSS}</style></head><body><h1>产业链三色图</h1>"
        + (f'<p class="sub">{_e(subtitle)}</p>' if subtitle else "")
        + f'<div class="chips">{_chips(map_df)}</div><table>{head}{"".join(rows)}</table></body></html>\n'
    )
