"""The BEEP! Korean hate-speech corpus (CC BY-SA 4.0): reading its labelled train file and the project's own
80/10/10 split, shared by the safety classifier's and the toxicity discriminator's training scripts so that
both hold out the same comments."""
import csv
import random

HATE_LABELS = ["none", "offensive", "hate"]
BIAS_LABELS = ["none", "gender", "others"]
BEEP_FILE = "../shared/data/korean-hate-speech/train.tsv"


def read_beep(path):
    """[(comment, hate index, bias index)] from BEEP!'s tab-separated labelled file."""
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(r["comments"], HATE_LABELS.index(r["hate"]), BIAS_LABELS.index(r["bias"])) for r in rows]


def split(rows, seed):
    """(train, val, test): 80/10/10, stratified by the hate label."""
    rng = random.Random(seed)
    parts = ([], [], [])
    for label in range(len(HATE_LABELS)):
        group = [r for r in rows if r[1] == label]
        rng.shuffle(group)
        a, b = int(0.8 * len(group)), int(0.9 * len(group))
        parts[0].extend(group[:a]), parts[1].extend(group[a:b]), parts[2].extend(group[b:])
    return parts
