"""2단계: 생성 전략 — greedy, beam search, top-k 샘플링, top-p(nucleus) 샘플링

배울 것
  1. beam search (num_beams=3): 후보 문장 여러 개를 함께 키워 전체 확률이 높은 문장을 찾습니다
  2. top-k 샘플링 (do_sample=True, top_k=50): 확률 상위 50개 토큰 중에서 확률대로 뽑습니다
  3. top-p 샘플링 (do_sample=True, top_p=0.92): 누적 확률 92%까지의 토큰 중에서 뽑습니다
  4. 샘플링은 돌릴 때마다 다르고, 시드(torch.manual_seed)를 고정하면 똑같이 재현됩니다

실행 (저장소 루트에서)
  python step2_generation_strategies.py   # 실습 파일: '# TODO 2-n' 빈칸의 todo()를 코드로 바꾼 뒤
  python solutions/step2_solution.py      # 정답 파일
  kogen check step2                       # 자동 채점
  KOGEN_MODEL=bundled python ...          # 인터넷 없이 내장 소형 모델로
"""
import os
import time

import torch

from kogen.exercises import todo  # noqa: F401  (실습 파일의 빈칸)
from kogen.models import load_model

MODEL_NAME = os.environ.get("KOGEN_MODEL", "skt/kogpt2-base-v2")
PROMPTS = ["안녕하세요", "이 영화는"]
# 모든 방법에 같은 길이를 줘야 공정하게 비교됩니다. min_new_tokens: 이만큼은 </s>로 끝내지 못하게 막습니다
MAX_NEW_TOKENS, MIN_NEW_TOKENS = 30, 10


def greedy_generate(model, tokenizer, prompt, max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=MIN_NEW_TOKENS):
    """1단계의 greedy: 비교의 기준선."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    output_ids = model.generate(input_ids, do_sample=False, max_new_tokens=max_new_tokens,
                                min_new_tokens=min_new_tokens)
    return tokenizer.decode(output_ids[0], skip_special_tokens=True)


def beam_generate(model, tokenizer, prompt, max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=MIN_NEW_TOKENS):
    """beam search: 매 단계 점수가 높은 후보 3개를 함께 키워 끝까지 가장 좋은 문장을 고릅니다."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    # TODO 2-1: beam search로 생성하세요: 후보 문장 3개를 함께 키웁니다.
    #   찾아볼 것: generate의 num_beams
    output_ids = todo()
    return tokenizer.decode(output_ids[0], skip_special_tokens=True)


def top_k_generate(model, tokenizer, prompt, max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=MIN_NEW_TOKENS,
                   seed=None):
    """top-k 샘플링: 확률 상위 50개 토큰만 남기고, 그 안에서 확률에 비례해 뽑습니다."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    if seed is not None:
        torch.manual_seed(seed)  # 같은 시드 → 같은 난수 → 같은 샘플
    # TODO 2-2: top-k 샘플링으로 생성하세요: 확률 상위 50개 토큰 안에서 확률대로 뽑습니다.
    #   찾아볼 것: generate의 do_sample, top_k
    output_ids = todo()
    return tokenizer.decode(output_ids[0], skip_special_tokens=True)


def top_p_generate(model, tokenizer, prompt, max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=MIN_NEW_TOKENS,
                   seed=None):
    """top-p(nucleus) 샘플링: 확률 높은 순으로 더해 92%가 될 때까지의 토큰 중에서 뽑습니다."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    if seed is not None:
        torch.manual_seed(seed)
    # TODO 2-3: top-p(nucleus) 샘플링으로 생성하세요: 누적 확률 0.92까지의 토큰 안에서 뽑습니다.
    #   찾아볼 것: generate의 top_p
    #   transformers는 top-k(50)를 기본으로 함께 켭니다. 순수한 top-p가 되게 top-k를 끄세요(0이면 끔).
    output_ids = todo()
    return tokenizer.decode(output_ids[0], skip_special_tokens=True)


STRATEGIES = {"greedy": greedy_generate, "beam=3": beam_generate, "top-k=50": top_k_generate,
              "top-p=0.92": top_p_generate}


def main():
    # 1단계의 from_pretrained 두 줄과 장치 선택을 kogen.load_model이 대신합니다
    model, tokenizer, _ = load_model(MODEL_NAME)
    print(f"모델: {MODEL_NAME} (장치 {model.device}), 새 토큰 {MIN_NEW_TOKENS}~{MAX_NEW_TOKENS}개")

    for prompt in PROMPTS:
        print(f"\n== 1. 네 가지 방법 비교: {prompt!r} ==")
        print("방법            시간  생성 결과")
        for name, generate in STRATEGIES.items():
            t = time.perf_counter()
            text = generate(model, tokenizer, prompt)
            print(f"{name:<12}  {time.perf_counter() - t:5.2f}s  {text}")
    print("greedy와 beam은 몇 번을 돌려도 같습니다. beam은 후보 3개를 함께 계산하므로 큰 모델일수록 greedy보다 느립니다.\n"
          "top-k와 top-p는 확률에 따라 뽑으므로 실행할 때마다 달라집니다.")

    prompt = PROMPTS[1]
    print(f"\n== 2. 같은 설정(top-p=0.92)을 세 번: {prompt!r} ==")
    texts = [top_p_generate(model, tokenizer, prompt) for _ in range(3)]
    for i, text in enumerate(texts, 1):
        print(f"{i}번째  {text}")
    print(f"서로 다른 결과: {len(set(texts))}/3 — 샘플링은 다양한 글을 만듭니다.")

    print("\n== 3. 시드를 고정하면 재현됩니다 ==")
    a = top_p_generate(model, tokenizer, prompt, seed=42)
    b = top_p_generate(model, tokenizer, prompt, seed=42)
    c = top_p_generate(model, tokenizer, prompt, seed=43)
    print(f"seed=42    {a}\nseed=42    {b}\nseed=43    {c}")
    print(f"seed=42 두 번이 같은가? {'✅ 같음' if a == b else '❌ 다름'}   "
          f"seed=43은 다른가? {'✅ 다름' if a != c else '같음(우연히 같을 수도 있습니다)'}")
    print("실험을 비교하거나 버그를 재현할 때는 시드를 고정하세요.")


if __name__ == "__main__":
    main()
