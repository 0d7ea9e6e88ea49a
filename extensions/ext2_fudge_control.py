"""확장 2: FUDGE — 판별기로 감정(긍정/부정)을 조종하며 생성하기

배울 것
  1. 4단계에서는 "긍정 …"/"부정 …" 접두어로 미세조정해 감정을 조종했습니다. 모델을 다시 학습하지 않고도
     조종할 수 있을까요? FUDGE(Yang & Klein, NAACL 2021)는 생성 중에 작은 판별기에게 묻습니다:
     "다음 토큰이 v라면, 이 글이 결국 긍정 리뷰가 될 확률은?"
         p(v | 앞글, 긍정)  ∝  p_LM(v | 앞글) · P(긍정 | 앞글 + v)^λ
  2. 판별기는 NSMC 리뷰의 모든 앞부분(prefix)에 그 리뷰의 레이블을 붙여 학습한 작은 GRU입니다
     (kogen/fudge_discriminator, 만드는 법: scripts/train_fudge_discriminator.py).
     매 단계 상위 200개 후보만 한 번에 채점하고, 나머지는 버립니다(-inf).
  3. 효과는 판별기가 아닌 *다른* 분류기(TF-IDF + 로지스틱 회귀)로 채점합니다. 자기가 조종한 판별기로
     채점하면 점수가 부풀려지기 때문입니다. 대가(perplexity 상승)와 다양성도 함께 봅니다.

실행 (저장소 루트에서, 인터넷 없이 CPU 1분 안팎; NSMC는 KOGEN_NSMC_DIR 또는 자동 다운로드)
  python extensions/ext2_fudge_control.py
  python extensions/ext2_fudge_control.py --quick          # 아주 작게(테스트용)
  kogen generate "이 영화는" --do-sample --control 긍정 --control-strength 2     # 명령 한 줄로
"""
import argparse
import os
from pathlib import Path

import torch

from kogen.decoding.discriminator import load_discriminator
from kogen.decoding.fudge import explain_step
from kogen.evaluation.compare import NEUTRAL_OPENINGS, control_row, markdown_table
from kogen.evaluation.judge import train_judge
from kogen.generation import PARAM_BY_NAME
from kogen.models import load_model

TUNED = Path("checkpoints/quick/hf_model")  # kogen train --quick의 결과(있으면 함께 비교)


def main():
    parser = argparse.ArgumentParser(description="FUDGE 감정 제어 실습")
    parser.add_argument("--quick", action="store_true", help="아주 작게: 프롬프트 2개 × 2개(테스트용)")
    quick = parser.parse_args().quick
    n_openings, per_opening, judge_size = (2, 2, 2_000) if quick else (10, 5, 30_000)
    openings = NEUTRAL_OPENINGS[:n_openings]
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model, tokenizer, path = load_model("bundled")  # 판별기는 내장 모델의 토크나이저로 학습했습니다
    disc = load_discriminator()
    print(f"모델: {path}\n판별기: GRU {disc.config['n_hidden']}, 매개변수 {sum(p.numel() for p in disc.parameters()):,}개, "
          f"토크나이저 '{disc.config['tokenizer']['name']}'\n")

    # 1. 한 단계: 모델이 좋아하는 토큰과, 긍정으로 끝날 것 같은 토큰은 다릅니다
    prompt, strength = "이 영화는", PARAM_BY_NAME["control_strength"].default  # kogen의 기본 λ
    print(f"== 1. '{prompt}' 다음 토큰, 긍정으로 조종(λ={strength}) ==")
    by_fudge, by_lm = explain_step(model, tokenizer, prompt, "긍정", strength, show=6)
    print("모델 혼자 고른 상위 6개:")
    print(markdown_table({f"'{r['token']}'": r for r in by_lm}, ["p_lm", "p_label", "p_fudge"], first="토큰", digits=3))
    print("FUDGE가 다시 매긴 상위 6개 (p_label = 판별기의 P(긍정 | 앞글 + 토큰)):")
    print(markdown_table({f"'{r['token']}'": r for r in by_fudge}, ["p_lm", "p_label", "p_fudge"], first="토큰", digits=3))

    # 2. 채점할 판정기: 판별기와 다른 모델, NSMC test로 정확도 확인
    print("\n== 2. 판정기(TF-IDF 문자 1-3gram + 로지스틱 회귀) 학습 ==")
    judge, acc, secs = train_judge(max_train=judge_size)
    print(f"NSMC train {judge_size:,}개로 {secs:.0f}초, NSMC test 정확도 {acc:.3f}")

    # 3. λ에 따라: 감정 일치율, 기본 모델이 본 perplexity(자연스러움의 대가), 다양성
    n = n_openings * per_opening
    print(f"\n== 3. 레이블마다 {n}개 샘플(top-k 50, top-p 0.92): 판정기가 본 감정 일치율 ==")
    base = (model, tokenizer)
    rows = {"제어 없음": control_row(model, tokenizer, judge, base, openings=openings, per_opening=per_opening)}
    for lam in (1.0, 2.0, 4.0, 8.0):
        rows[f"FUDGE λ={lam:g}"] = control_row(model, tokenizer, judge, base, strength=lam, openings=openings,
                                               per_opening=per_opening)
    if TUNED.exists():  # 4단계식 미세조정 모델: 접두어만 / 접두어 + FUDGE
        tuned, tuned_tok, _ = load_model(str(TUNED))
        rows["미세조정 + 접두어"] = control_row(tuned, tuned_tok, judge, base, prefix=True, openings=openings,
                                          per_opening=per_opening)
        rows["미세조정 + 접두어 + FUDGE λ=4"] = control_row(tuned, tuned_tok, judge, base, prefix=True, strength=4.0,
                                                     openings=openings, per_opening=per_opening)
    else:
        print(f"({TUNED}가 없어 미세조정 모델 줄은 건너뜁니다: kogen train --quick으로 만들 수 있습니다)")
    print(markdown_table(rows, ["match", "match 긍정", "match 부정", "ppl (base)", "distinct-2"], first="설정"))
    print("match: 요청한 감정과 판정이 같은 비율(제어 없음은 약 0.5가 기준선) · ppl (base): 기본 모델이 본 perplexity")

    # 4. 예시
    print("\n== 4. 예시 (FUDGE λ=4) ==")
    samples = rows["FUDGE λ=4"]["samples"]
    print(f"[긍정] {samples[0]}\n[긍정] {samples[1]}\n[부정] {samples[n]}\n[부정] {samples[n + 1]}")


if __name__ == "__main__":
    main()
