"""A character n-gram TF-IDF + logistic-regression classifier kept as plain arrays (no pickle): the
vocabulary in JSON and idf / coefficients in safetensors, rebuilt into scikit-learn objects at load
time, so loading the shipped classifier never runs code from a file."""
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

VECTORIZER = dict(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True)


def fit(texts, label_sets, C=4.0):
    """One vectorizer, one logistic regression per label set: (vectorizer, [models])."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    vec = TfidfVectorizer(**VECTORIZER)
    X = vec.fit_transform(texts)
    return vec, [LogisticRegression(max_iter=3000, C=C).fit(X, y) for y in label_sets]


def save(folder, vec, models, names):
    folder = Path(folder)
    vocab = {k: int(v) for k, v in vec.vocabulary_.items()}
    (folder / "tfidf_vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    # C order: scikit-learn's coef_ can be Fortran-ordered, and safetensors writes the raw buffer
    arrays = {"idf": np.ascontiguousarray(vec.idf_, dtype=np.float32)}
    for name, m in zip(names, models):
        arrays.update({f"{name}.coef": np.ascontiguousarray(m.coef_, dtype=np.float32),
                       f"{name}.intercept": np.ascontiguousarray(m.intercept_, dtype=np.float32),
                       f"{name}.classes": np.ascontiguousarray(m.classes_, dtype=np.int64)})
    save_file(arrays, str(folder / "tfidf.safetensors"))


def load(folder, names):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    folder = Path(folder)
    vocab = json.loads((folder / "tfidf_vocab.json").read_text(encoding="utf-8"))
    arrays = load_file(str(folder / "tfidf.safetensors"))
    vec = TfidfVectorizer(**VECTORIZER, vocabulary=vocab)
    vec.idf_ = arrays["idf"].astype(np.float64)
    models = []
    for name in names:
        m = LogisticRegression()
        m.coef_, m.intercept_ = arrays[f"{name}.coef"].astype(np.float64), arrays[f"{name}.intercept"].astype(np.float64)
        m.classes_ = arrays[f"{name}.classes"]
        models.append(m)
    return vec, models


def proba(vec, model, texts):
    """(N, n_classes) probabilities, columns in class-index order 0..n-1."""
    p = model.predict_proba(vec.transform(texts))
    out = np.zeros((len(texts), int(model.classes_.max()) + 1))
    out[:, model.classes_] = p
    return out
