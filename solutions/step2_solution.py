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
from kogen.models import load_model, model_label

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
    # BEGIN SOLUTION beam search로 생성하세요: 후보 문장 3개를 함께 키웁니다.
    #   찾아볼 것: generate의 num_beams
    # API: model.generate(input_ids, do_sample=False, num_beams=..., max_new_tokens=..., min_new_tokens=...)
    output_ids = model.generate(input_ids, do_sample=False, num_beams=3, max_new_tokens=max_new_tokens,
                                min_new_tokens=min_new_tokens)
    # END SOLUTION
    return tokenizer.decode(output_ids[0], skip_special_tokens=True)


def top_k_generate(model, tokenizer, prompt, max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=MIN_NEW_TOKENS,
                   seed=None):
    """top-k 샘플링: 확률 상위 50개 토큰만 남기고, 그 안에서 확률에 비례해 뽑습니다."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    if seed is not None:
        torch.manual_seed(seed)  # 같은 시드 → 같은 난수 → 같은 샘플
    # BEGIN SOLUTION top-k 샘플링으로 생성하세요: 확률 상위 50개 토큰 안에서 확률대로 뽑습니다.
    #   찾아볼 것: generate의 do_sample, top_k
    # API: model.generate(input_ids, do_sample=..., top_k=..., max_new_tokens=..., min_new_tokens=...)
    output_ids = model.generate(input_ids, do_sample=True, top_k=50, max_new_tokens=max_new_tokens,
                                min_new_tokens=min_new_tokens)
    # END SOLUTION
    return tokenizer.decode(output_ids[0], skip_special_tokens=True)


def top_p_generate(model, tokenizer, prompt, max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=MIN_NEW_TOKENS,
                   seed=None):
    """top-p(nucleus) 샘플링: 확률 높은 순으로 더해 92%가 될 때까지의 토큰 중에서 뽑습니다."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    if seed is not None:
        torch.manual_seed(seed)
    # BEGIN SOLUTION top-p(nucleus) 샘플링으로 생성하세요: 누적 확률 0.92까지의 토큰 안에서 뽑습니다.
    #   찾아볼 것: generate의 top_p
    #   transformers는 top-k(50)를 기본으로 함께 켭니다. 순수한 top-p가 되게 top-k를 끄세요(0이면 끔).
    # API: model.generate(input_ids, do_sample=..., top_p=..., top_k=..., max_new_tokens=..., min_new_tokens=...)
    output_ids = model.generate(input_ids, do_sample=True, top_p=0.92, top_k=0, max_new_tokens=max_new_tokens,
                                min_new_tokens=min_new_tokens)
    # END SOLUTION
    return tokenizer.decode(output_ids[0], skip_special_tokens=True)


@torch.no_grad()
def show_next_token(model, tokenizer, prompt, top_k=50, top_p=0.92, temperatures=(0.7, 1.5), show=10):
    """다음 토큰 후보 상위 show개를 막대로: 디코딩은 결국 이 분포에서 하나를 고르는 일입니다."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    logits = model(input_ids).logits[0, -1]  # (vocab,) 마지막 위치 = 다음 토큰의 점수
    # temperature: logits를 T로 나눈 뒤 softmax. T<1이면 1등이 더 커지고, T>1이면 고르게 퍼집니다
    probs = {t: (logits / t).softmax(-1) for t in (1.0, *temperatures)}
    # top-p: 확률 높은 순으로 더해 p에 닿을 때까지의 토큰(닿게 한 토큰까지)만 남깁니다. 몇 위까지인가
    nucleus = {t: int((p.sort(descending=True).values.cumsum(0) < top_p).sum()) + 1 for t, p in probs.items()}
    p1 = probs[1.0]
    order = p1.argsort(descending=True)[:show].tolist()
    scale = 30 / p1[order[0]].item()
    heads = "".join(f"  T={t}" for t in temperatures)
    print(f"순위  확률(T=1) {'막대':<29} top-k={top_k} top-p={top_p}{heads}   토큰")
    for rank, i in enumerate(order, 1):
        keep = lambda ok: "✓" if ok else "✗"  # noqa: E731
        temps = "".join(f"  {probs[t][i]:.3f}" for t in temperatures)
        print(f"{rank:>3}   {p1[i]:.3f}     {'█' * round(p1[i].item() * scale):<30} {keep(rank <= top_k):^8} "
              f"{keep(rank <= nucleus[1.0]):^10}{temps}   {tokenizer.convert_ids_to_tokens(i)!r}")
    cut = ", ".join(f"T={t}이면 {n}위" for t, n in nucleus.items())
    where = f"상위 {show}개는 모두 남고(✓) 잘리는 곳은 더 아래입니다" if show <= min(top_k, nucleus[1.0]) else "✗는 버려집니다"
    print(f"{where}: top-k={top_k}은(는) 늘 {top_k}위까지, "
          f"top-p={top_p}는 {cut}까지.\n온도가 낮으면 분포가 뾰족해져(1위 {probs[temperatures[0]][order[0]]:.2f}) top-p가 "
          f"남기는 후보가 줄고, 높으면 평평해져(1위 {probs[temperatures[-1]][order[0]]:.2f}) 수천 개로 늘어납니다.")


STRATEGIES = {"greedy": greedy_generate, "beam=3": beam_generate, "top-k=50": top_k_generate,
              "top-p=0.92": top_p_generate}


def main():
    # 1단계의 from_pretrained 두 줄과 장치 선택을 kogen.load_model이 대신합니다
    model, tokenizer, _ = load_model(MODEL_NAME)
    print(f"모델: {model_label(MODEL_NAME, model.name_or_path)} (장치 {model.device}), 새 토큰 {MIN_NEW_TOKENS}~{MAX_NEW_TOKENS}개")

    prompt = "정말 재미있게"
    print(f"\n== 0. 디코딩이 고르는 것: {prompt!r} 다음 토큰의 후보 ==")
    show_next_token(model, tokenizer, prompt)

    print("\n== 1. 네 가지 방법 비교 ==")
    for prompt in PROMPTS:
        print(f"\n프롬프트 {prompt!r}\n방법            시간  생성 결과")
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
