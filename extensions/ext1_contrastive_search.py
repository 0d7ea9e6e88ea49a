"""확장 1: contrastive search(대조 탐색) — 반복하지 않는 결정적 디코딩

배울 것
  1. greedy와 beam search는 같은 말을 되풀이하기 쉽습니다(2단계에서 본 현상). 샘플링은 반복은 적지만
     무작위라 엉뚱해지고, 돌릴 때마다 다릅니다.
  2. contrastive search(Su et al., NeurIPS 2022)는 매 단계 top-k 후보 중에서
         점수 = (1 - α) · p(토큰)  -  α · (그 토큰의 은닉 상태가 앞 문맥의 은닉 상태와 가장 닮은 정도)
     가 가장 큰 토큰을 고릅니다. 확률이 높으면서도 앞에서 한 말과 덜 닮은 토큰입니다. α=0이면 greedy와 같습니다.
  3. 반복(rep-n), 다양성(diversity, distinct-n), 자연스러움(perplexity)을 숫자로 비교합니다.

실행 (저장소 루트에서, 인터넷 없이 내장 모델로 CPU 1분 안팎)
  python extensions/ext1_contrastive_search.py
  python extensions/ext1_contrastive_search.py --quick      # 아주 작게(테스트용)
  KOGEN_MODEL=skt/kogpt2-base-v2 python extensions/ext1_contrastive_search.py   # 진짜 KoGPT2(인터넷 필요)
  kogen generate "이 영화는" --penalty-alpha 0.6 --top-k 4     # 명령 한 줄로
"""
import argparse
import os

import torch

from kogen.decoding.contrastive import explain_step
from kogen.evaluation.compare import DECODING_METHODS, NEUTRAL_OPENINGS, decoding_row, markdown_table
from kogen.generation import generate
from kogen.models import load_model

MODEL_NAME = os.environ.get("KOGEN_MODEL", "bundled")
PROMPT = "이 영화는 정말"
LOOPING = "이 영화를 보고 이 영화를 보고"  # greedy가 자주 빠지는 되풀이의 한가운데


def main():
    parser = argparse.ArgumentParser(description="contrastive search 실습")
    parser.add_argument("--quick", action="store_true", help="아주 작게: 프롬프트 3개, 16토큰(테스트용)")
    quick = parser.parse_args().quick
    n_prompts, n_tokens = (3, 16) if quick else (20, 48)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model, tokenizer, path = load_model(MODEL_NAME)
    print(f"모델: {path}\n")

    # 1. 한 단계를 손으로: 후보 k개의 확률, 앞 문맥과 닮은 정도(코사인 유사도의 최댓값), 점수
    print(f"== 1. 한 단계 들여다보기: '{LOOPING}' 다음 토큰 (k=4, α=0.6) ==")
    rows = {f"'{r['token']}'": dict(r) for r in explain_step(model, tokenizer, LOOPING, top_k=4, penalty_alpha=0.6)}
    print(markdown_table(rows, ["prob", "penalty", "score"], first="후보", digits=3))
    by_prob = max(rows, key=lambda k: rows[k]["prob"])
    print(f"확률로 고르면(greedy) {by_prob}, 점수로 고르면(contrastive) {next(iter(rows))}. penalty가 1에 가까운 후보는 "
          f"앞에서 이미 한 말을 되풀이하는 토큰입니다.\n")

    # 2. 같은 프롬프트, 네 가지 방법
    print(f"== 2. '{PROMPT}'를 {n_tokens}토큰 이어 쓰기 ==")
    settings = {"greedy": {}, "beam 4": dict(num_beams=4), "top-p 0.92": dict(do_sample=True, top_k=0, top_p=0.92,
                                                                               seed=0),
                "contrastive": dict(penalty_alpha=0.6, top_k=4)}
    for name, kw in settings.items():
        text = generate(model, tokenizer, PROMPT, max_new_tokens=n_tokens, min_new_tokens=n_tokens, **kw)[0]
        print(f"[{name:>11}] {text}")

    # 3. 숫자로: 프롬프트 여러 개에서 반복과 다양성, 모델이 본 자연스러움
    print(f"\n== 3. 프롬프트 {n_prompts}개 × {n_tokens}토큰: 반복·다양성·perplexity (어절 단위) ==")
    methods = {k: DECODING_METHODS[k] for k in ("greedy", "beam 4", "top-p 0.92", "contrastive α0.6 k4")}
    table = {name: decoding_row(model, tokenizer, NEUTRAL_OPENINGS[:n_prompts], m, n_tokens)[0]
             for name, m in methods.items()}
    print(markdown_table(table, ["rep-2", "rep-4", "diversity", "distinct-2", "ppl"]))
    print("rep-n: 글 안에서 되풀이된 n-gram의 비율(%, 낮을수록 덜 반복) · diversity: (1-rep2)(1-rep3)(1-rep4) · "
          "ppl: 모델이 본 이어 쓴 글의 perplexity(낮을수록 모델에게 자연스러움)")

    # 4. α를 바꾸면: 0은 greedy, 클수록 반복은 줄지만 확률을 덜 믿습니다
    print("\n== 4. α에 따라 (k=4) ==")
    alphas = {f"α={a}": decoding_row(model, tokenizer, NEUTRAL_OPENINGS[:n_prompts],
                                     dict(penalty_alpha=a, top_k=4) if a else {}, n_tokens)[0]
              for a in (0.0, 0.3, 0.6, 0.9)}
    print(markdown_table(alphas, ["rep-2", "diversity", "ppl"]))
    low, high = alphas["α=0.0"], alphas["α=0.6"]
    print(f"α=0(greedy) → 0.6: rep-2 {low['rep-2']:.1f} → {high['rep-2']:.1f}, "
          f"ppl {low['ppl']:.1f} → {high['ppl']:.1f}. 논문 권장값: 영어 k=4, α=0.6 · 한국어 k=3, α=0.6")


if __name__ == "__main__":
    main()
