"""The sentiment judge: an independent classifier that scores whether generated reviews are 긍정 or 부정.

It must not be the model that steers generation (FUDGE's GRU discriminator reads the LM's token ids);
this one is a TF-IDF bag of character 1-3 grams within eojeol + logistic regression (scikit-learn),
trained on NSMC train and scored on NSMC test, which neither it nor the discriminator trained on.
"""
import os
import random
import time

from ..data import ensure_nsmc, read_nsmc

LABELS = ["부정", "긍정"]  # class index = NSMC label


def nsmc_reviews(path, limit=None, seed=0):
    """(reviews, labels) from an NSMC file, the label word taken off; `limit` samples at random."""
    texts, _ = read_nsmc(path)
    if limit and limit < len(texts):
        texts = random.Random(seed).sample(texts, limit)
    return [t.split(" ", 1)[1] for t in texts], [LABELS.index(t.split(" ", 1)[0]) for t in texts]


def train_judge(data_dir=None, max_train=None, max_test=10_000):
    """(classifier, test accuracy, seconds). `max_train` trades accuracy for time (lessons use ~30k)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    start = time.perf_counter()
    root = ensure_nsmc(data_dir)
    x_train, y_train = nsmc_reviews(os.path.join(root, "ratings_train.txt"), max_train)
    x_test, y_test = nsmc_reviews(os.path.join(root, "ratings_test.txt"), max_test)
    clf = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=3, sublinear_tf=True),
                        LogisticRegression(max_iter=1000, C=2.0))
    clf.fit(x_train, y_train)
    return clf, clf.score(x_test, y_test), time.perf_counter() - start


def match_share(clf, texts, label):
    """Share of `texts` the judge calls `label` ('긍정' or '부정')."""
    if not texts:
        return float("nan")
    want = LABELS.index(label)
    return sum(int(p == want) for p in clf.predict(texts)) / len(texts)
