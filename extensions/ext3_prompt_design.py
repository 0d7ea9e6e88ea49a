"""확장 3: 프롬프트 설계 — 학습 없이, 말로 부탁해서 원하는 글을 얻을 수 있을까?

배울 것
  1. 같은 목표(긍정 리뷰 / 부정 리뷰)를 프롬프트만 바꿔서 노려 봅니다. 모델은 미세조정하지 않은 *기본* 내장 모델.
       plain        이 영화는                                   (아무 요청 없음: 기준선)
       label word   긍정 이 영화는                              (4단계 미세조정 모델이 배운 형식)
       instruction  다음은 이 영화를 칭찬하는 긍정적인 리뷰입니다. 이 영화는
       rating       평점 10점. 이 영화는                         (리뷰 사이트에서 볼 법한 신호)
       few-shot     <긍정 리뷰>⟨/s⟩<긍정 리뷰>⟨/s⟩<긍정 리뷰>⟨/s⟩이 영화는   (예시 3개를 앞에)
  2. 모델은 학습한 글의 형식만 압니다. 이 모델은 영화 리뷰를 </s>로 이어 붙여 학습했으므로, 지시문보다
     "같은 형식의 예시"(few-shot)가 더 잘 통할 수 있습니다. 어느 쪽인지는 재 봐야 압니다.
  3. 채점은 확장 2와 같은 독립 판정기(TF-IDF + 로지스틱 회귀)로, 프롬프트 뒤에 모델이 쓴 부분만 봅니다.

실행 (저장소 루트에서, 인터넷 없이 CPU 1분 안팎; NSMC는 KOGEN_NSMC_DIR 또는 자동 다운로드)
  python extensions/ext3_prompt_design.py
  python extensions/ext3_prompt_design.py --quick          # 아주 작게(테스트용)
"""
import argparse
import os

import torch

from kogen.evaluation.compare import NEUTRAL_OPENINGS, PROMPT_STYLES, markdown_table, prompt_style_row
from kogen.evaluation.judge import train_judge
from kogen.models import load_model


def main():
    parser = argparse.ArgumentParser(description="프롬프트 설계 실습")
    parser.add_argument("--quick", action="store_true", help="아주 작게: 프롬프트 2개 × 2개(테스트용)")
    quick = parser.parse_args().quick
    n_openings, per_opening, judge_size = (2, 2, 2_000) if quick else (10, 5, 30_000)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model, tokenizer, path = load_model(os.environ.get("KOGEN_MODEL", "bundled"))
    print(f"모델: {path} (미세조정 없음)\n")

    print("== 1. 판정기 학습 ==")
    judge, acc, secs = train_judge(max_train=judge_size)
    print(f"TF-IDF + 로지스틱 회귀, NSMC train {judge_size:,}개로 {secs:.0f}초, NSMC test 정확도 {acc:.3f}\n")

    n = n_openings * per_opening
    print(f"== 2. 프롬프트 다섯 가지 × 레이블 2개 × 샘플 {n}개 (top-k 50, top-p 0.92, 32토큰) ==")
    rows = {}
    for style in PROMPT_STYLES:
        rows[style] = prompt_style_row(model, tokenizer, judge, style, NEUTRAL_OPENINGS[:n_openings], per_opening)
        print(f"  {style}: {rows[style]['example prompt']!r}")
    print()
    print(markdown_table(rows, ["match", "match 긍정", "match 부정", "ppl (base)", "distinct-2"], first="프롬프트"))
    print("match: 요청한 감정과 판정이 같은 비율(plain이 기준선) · ppl (base): 이 모델이 본 perplexity(프롬프트 제외)")

    best = max(rows, key=lambda s: rows[s]["match"])
    gain = rows[best]["match"] - rows["plain"]["match"]
    print(f"\n== 3. 결과 ==\n가장 잘 통한 프롬프트: {best} (일치율 {rows[best]['match']:.2f}, plain보다 {gain:+.2f})")
    if gain < 0.1:
        print("어느 프롬프트도 기준선보다 뚜렷이(0.1 이상) 낫지 않습니다. 이 작은 모델은 리뷰를 이어 쓰도록만 학습했지, "
              "지시를 따르거나 예시의 감정을 흉내 내도록 학습한 적이 없습니다. 이런 모델에서 감정을 정하려면 "
              "4단계(레이블 접두어로 미세조정)나 확장 2(FUDGE)가 필요합니다. 더 큰 모델에서는 다를 수 있으니 "
              "KOGEN_MODEL=skt/kogpt2-base-v2로 재 보세요.")
    else:
        print("프롬프트만 바꿔도 감정이 움직였습니다. 그래도 4단계(미세조정)와 확장 2(FUDGE)의 일치율과 비교해 보세요.")
    print(f"\n예시 ({best}, 긍정): {rows[best]['samples'][0]}\n예시 ({best}, 부정): {rows[best]['samples'][n]}")


if __name__ == "__main__":
    main()
