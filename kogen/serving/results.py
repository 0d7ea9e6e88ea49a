"""A study's results: pure functions from stored votes to the numbers on /eval/NAME/results and to CSV.

A vote's choice is stored relative to its item: "a" (system_a won), "b", "tie", "both_bad".
Win rate = wins / (wins + losses): ties and "both bad" say nothing about which is better, so they are
counted and shown but left out of the rate. Bradley-Terry (3+ systems) counts them as half a win each way.
"""
import csv
import io
import math
from datetime import datetime, timezone

from ..evaluation.stats import Z95, bt_scores, normal_two_sided_p, votes_to_separate, wilson

CRITERIA = {"fluency": "유창성", "coherence": "일관성", "adherence": "조건 일치"}


def tally(labels, votes, choice_of=lambda v: v["choice"]):
    """{label: wins, losses, ties, both_bad, win_rate, win_rate_ci} over the votes with a choice."""
    rows = {label: dict(wins=0, losses=0, ties=0, both_bad=0) for label in labels}
    for v in votes:
        choice, a, b = choice_of(v), rows[v["system_a"]], rows[v["system_b"]]
        if choice == "a":
            a["wins"], b["losses"] = a["wins"] + 1, b["losses"] + 1
        elif choice == "b":
            b["wins"], a["losses"] = b["wins"] + 1, a["losses"] + 1
        elif choice in ("tie", "both_bad"):
            key = "ties" if choice == "tie" else "both_bad"
            a[key], b[key] = a[key] + 1, b[key] + 1
    for r in rows.values():
        n = r["wins"] + r["losses"]
        r["win_rate"] = round(r["wins"] / n, 4) if n else None
        r["win_rate_ci"] = [round(x, 4) for x in wilson(r["wins"], n)]
    return rows


def head_to_head(votes, first, second):
    """(first's wins over second, second's wins over first)."""
    won = lost = 0
    for v in votes:
        winner = {"a": v["system_a"], "b": v["system_b"]}.get(v["choice"])
        if {v["system_a"], v["system_b"]} == {first, second} and winner:
            won, lost = won + (winner == first), lost + (winner == second)
    return won, lost


def leaders(order, votes):
    """The top two, their head-to-head p-value, and roughly how many more votes (of any pair, in the
    mix seen so far) would separate them at 95% with 80% power."""
    if len(order) < 2:
        return None
    first, second = order[:2]
    won, lost = head_to_head(votes, first, second)
    n = won + lost
    z = (won / n - 0.5) / math.sqrt(0.25 / n) if n else 0.0
    more = votes_to_separate(won, lost)
    share = n / len(votes) if votes else 0  # how many of all votes land on this pair and are decisive
    if more:
        more = math.ceil(more / share)
    return dict(first=first, second=second, wins=won, losses=lost, p_value=round(normal_two_sided_p(z), 4),
                separated=abs(z) >= Z95, more_votes=more)


def summarize(study, systems, votes, rounds=200):
    """The JSON of GET /eval/NAME/results."""
    labels = [s["label"] for s in systems]
    rows = tally(labels, votes)
    out = []
    for s in systems:
        row = dict(system=s["label"], model=s["model"], preset=s["preset"], **rows[s["label"]])
        row["criteria"] = {}
        for key in CRITERIA:
            t = tally(labels, votes, lambda v: v["criteria"].get(key))[s["label"]]
            if t["wins"] + t["losses"] + t["ties"] + t["both_bad"]:
                row["criteria"][key] = {k: t[k] for k in ("wins", "losses", "win_rate", "win_rate_ci")}
        out.append(row)
    if len(systems) > 2:
        index = {label: i for i, label in enumerate(labels)}
        scores, low, high = bt_scores(len(labels), [(index[v["system_a"]], index[v["system_b"]], v["choice"])
                                                    for v in votes], rounds=rounds)
        for row, sc, lo, hi in zip(out, scores, low, high):
            row.update(bt=round(float(sc), 1), bt_ci=[round(float(lo), 1), round(float(hi), 1)])
        order = [r["system"] for r in sorted(out, key=lambda r: -r["bt"])]
    else:
        order = [r["system"] for r in sorted(out, key=lambda r: -(r["win_rate"] or 0))]
    return dict(study=study["name"], votes=len(votes), raters=len({v["rater"] for v in votes}),
                settings=study["settings"], systems=out, order=order, leaders=leaders(order, votes))


def leader_sentence(res):
    """One Korean line about the top two, for the results page."""
    lead = res["leaders"]
    if not lead or not res["votes"]:
        return "아직 투표가 없습니다. 평가 페이지에서 투표를 모으세요."
    pair = f"1위 {lead['first']}와(과) 2위 {lead['second']}"
    if lead["separated"]:
        return f"{pair}는 95% 수준에서 구분됩니다(직접 비교 {lead['wins']}:{lead['losses']}, p={lead['p_value']})."
    if lead["more_votes"] is None:
        return f"{pair} 사이에 아직 차이가 보이지 않아 필요한 표 수를 추정할 수 없습니다(직접 비교 {lead['wins']}:{lead['losses']})."
    return (f"{pair}를 구분하려면 지금 추세라면 대략 {lead['more_votes']}표가 더 필요합니다"
            f"(직접 비교 {lead['wins']}:{lead['losses']}, p={lead['p_value']}; 95% 수준, 검정력 80%).")


def interval(ci, digits=3):
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def tables(res):
    """The results page's tables: (caption, header, rows)."""
    bt = len(res["systems"]) > 2
    header = ["시스템", "모델", "프리셋", "이김", "짐", "비김", "둘 다 나쁨", "승률", "95% 구간(Wilson)"]
    if bt:
        header += ["BT 점수(Elo 척도)", "95% 구간(bootstrap)"]
    rows = []
    for r in sorted(res["systems"], key=lambda r: res["order"].index(r["system"])):
        row = [r["system"], r["model"], r["preset"], r["wins"], r["losses"], r["ties"], r["both_bad"],
               "-" if r["win_rate"] is None else f"{r['win_rate']:.3f}", interval(r["win_rate_ci"])]
        if bt:
            row += [f"{r['bt']:.0f}", interval(r["bt_ci"], 0)]
        rows.append(row)
    out = [("시스템별 결과", header, rows)]
    crit = [[r["system"], CRITERIA[k], c["wins"], c["losses"], "-" if c["win_rate"] is None else f"{c['win_rate']:.3f}",
             interval(c["win_rate_ci"])] for r in res["systems"] for k, c in r["criteria"].items()]
    if crit:
        out.append(("기준별 승률", ["시스템", "기준", "이김", "짐", "승률", "95% 구간(Wilson)"], crit))
    return out


def votes_csv(study_name, votes):
    """Every vote as CSV, with a BOM so spreadsheet programs read the Korean as UTF-8."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["vote_id", "study", "item_id", "rater", "created_utc", "prompt", "system_a", "system_b", "output_a",
                "output_b", "choice", "winner", *CRITERIA])
    for v in votes:
        winner = {"a": v["system_a"], "b": v["system_b"]}.get(v["choice"], "")
        created = datetime.fromtimestamp(v["created"], timezone.utc).isoformat(timespec="milliseconds")
        w.writerow([v["id"], study_name, v["item_id"], v["rater"], created, v["prompt"], v["system_a"], v["system_b"],
                    v["output_a"], v["output_b"], v["choice"], winner, *(v["criteria"].get(k, "") for k in CRITERIA)])
    return "\ufeff" + buf.getvalue()
