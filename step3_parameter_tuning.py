"""3단계: 매개변수 조정 — 되풀이 막기, temperature, 그리고 추천 조합

배울 것
  1. no_repeat_ngram_size=3: 이미 나온 3-gram(토큰 세 개 연속)을 다시 만들지 못하게 막습니다
  2. repetition_penalty=1.5: 이미 나온 토큰의 점수를 1.5로 나눠(음수면 곱해) 덜 고르게 합니다
  3. temperature: logits를 T로 나눈 뒤 softmax. T<1이면 뾰족해져 보수적, T>1이면 평평해져 엉뚱해집니다
  4. 다양성(distinct-2)과 되풀이(반복 3-gram)를 숫자로 재서 설정을 비교하는 법
  5. 책의 추천 조합: do_sample=True, repetition_penalty=1.5, no_repeat_ngram_size=3,
     temperature=0.9, top_k=50, top_p=0.92

실행 (저장소 루트에서)
  python step3_parameter_tuning.py   # 실습 파일: '# TODO 3-n' 빈칸의 todo()를 코드로 바꾼 뒤
  python solutions/step3_solution.py # 정답 파일
  kogen check step3                  # 자동 채점
  KOGEN_MODEL=bundled python ...     # 인터넷 없이 내장 소형 모델로
"""
import os
import time

import torch

from kogen.exercises import todo  # noqa: F401  (실습 파일의 빈칸)
from kogen.models import load_model, model_label

MODEL_NAME = os.environ.get("KOGEN_MODEL", "skt/kogpt2-base-v2")
TEMPERATURES = [0.3, 0.7, 1.0, 1.5]
SEED = 42


def greedy_generate(model, tokenizer, prompt, max_new_tokens=60, min_new_tokens=60):
    """1단계의 greedy: 되풀이가 얼마나 심한지 보는 기준선."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    output_ids = model.generate(input_ids, do_sample=False, max_new_tokens=max_new_tokens,
                                min_new_tokens=min_new_tokens)
    return tokenizer.decode(output_ids[0], skip_special_tokens=True)


def no_repeat_generate(model, tokenizer, prompt, max_new_tokens=60, min_new_tokens=60):
    """greedy + no_repeat_ngram_size=3: 같은 3-gram이 두 번 나오지 않습니다."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    # TODO 3-1: greedy에 "같은 3-gram 다시 쓰지 않기"를 더해 생성하세요.
    #   찾아볼 것: generate의 no_repeat_ngram_size
    output_ids = todo()
    return tokenizer.decode(output_ids[0], skip_special_tokens=True)


def repetition_penalty_generate(model, tokenizer, prompt, max_new_tokens=60, min_new_tokens=60):
    """greedy + repetition_penalty=1.5: 이미 나온 토큰일수록 덜 고릅니다."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    # TODO 3-2: greedy에 반복 벌점 1.5를 더해 생성하세요.
    #   찾아볼 것: generate의 repetition_penalty
    output_ids = todo()
    return tokenizer.decode(output_ids[0], skip_special_tokens=True)


def temperature_generate(model, tokenizer, prompt, temperature, num_samples=5, max_new_tokens=20,
                         min_new_tokens=20, seed=None):
    """temperature 하나로 샘플 num_samples개: 글의 목록."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    if seed is not None:
        torch.manual_seed(seed)
    # TODO 3-3: 온도 temperature로 샘플 num_samples개를 한 번에 만드세요.
    #   찾아볼 것: generate의 temperature, num_return_sequences
    #   기본 top-k(50)를 꺼야 temperature만의 효과가 보입니다.
    output_ids = todo()
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in output_ids]


def recommended_generate(model, tokenizer, prompt, max_new_tokens=40, min_new_tokens=10, seed=None):
    """책의 추천 조합: 샘플링 + 되풀이 막기 + 약간 낮춘 temperature + top-k와 top-p를 함께."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    if seed is not None:
        torch.manual_seed(seed)
    # TODO 3-4: 책의 추천 조합으로 생성하세요: 샘플링 + 되풀이 막기 + 반복 벌점 + temperature + top-k와 top-p
    #   찾아볼 것: 이 파일 맨 위 설명의 5번(값), 위의 세 함수(인자 이름)
    output_ids = todo()
    return tokenizer.decode(output_ids[0], skip_special_tokens=True)


def distinct_n(token_lists, n=2):
    """다양성: 모든 샘플의 n-gram 중 서로 다른 것의 비율 (0~1, 클수록 다양)."""
    grams = [tuple(t[i:i + n]) for t in token_lists for i in range(len(t) - n + 1)]
    return len(set(grams)) / max(1, len(grams))


def repeated_ngrams(tokens, n=3):
    """되풀이: 한 글 안에서 같은 n-gram이 두 번째 이후로 나온 횟수 (0이면 되풀이 없음)."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) - len(set(grams))


@torch.no_grad()
def perplexity(model, tokenizer, text):
    """모델이 본 이 글의 자연스러움: 토큰마다 '정답 다음 토큰'에 준 확률의 기하평균의 역수 (낮을수록 뻔한 글)."""
    ids = tokenizer.encode(text, return_tensors="pt").to(model.device)  # (1, T)
    logits = model(ids).logits  # (1, T, vocab)
    # 위치 t의 점수로 t+1번째 토큰을 맞히는 손실(cross entropy)의 평균 → exp
    loss = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
    return loss.exp().item()


def main():
    model, tokenizer, _ = load_model(MODEL_NAME)  # 1단계의 from_pretrained 두 줄 + 장치 선택
    print(f"모델: {model_label(MODEL_NAME, model.name_or_path)} (장치 {model.device})")

    prompt = "이 영화는"
    print(f"\n== 1. 되풀이 막기: {prompt!r}에서 새 토큰 60개 (모두 greedy라 결정적) ==")
    print("방법                     반복 3-gram  시간   생성 결과")
    texts = {}
    for name, generate in [("greedy", greedy_generate), ("no_repeat_ngram_size=3", no_repeat_generate),
                           ("repetition_penalty=1.5", repetition_penalty_generate)]:
        t = time.perf_counter()
        texts[name] = text = generate(model, tokenizer, prompt)
        print(f"{name:<24} {repeated_ngrams(tokenizer.tokenize(text)):>8}    {time.perf_counter() - t:5.2f}s  {text}")
    # 되풀이는 토큰으로 셉니다. 한 토큰짜리 말이 두세 번 이어지는 것은 3-gram의 되풀이가 아닙니다
    tokens = tokenizer.tokenize(texts["no_repeat_ngram_size=3"])
    twice = next((a for a, b in zip(tokens, tokens[1:]) if a == b), None)
    if twice:
        print(f"no_repeat_ngram_size=3 줄에 {twice.lstrip('▁')!r}가 이어져도 되풀이 0이 맞습니다: 그 말이 토큰 하나({twice!r})라서 "
              f"'{twice} {twice} {twice}'도 3-gram으로는 한 번뿐입니다(토큰 세 개 묶음이 다시 나와야 되풀이).")
    print("no_repeat_ngram_size는 3-gram 되풀이를 0으로 만듭니다(규칙이므로 반드시).\n"
          "repetition_penalty는 되풀이를 줄이지만 막지는 않고, 너무 크면 조사·어미까지 피해 문장이 어색해집니다.")

    prompt = "배우들의 연기가"
    print(f"\n== 2. temperature 바꿔 보기: {prompt!r}, 온도마다 샘플 5개 (seed={SEED}) ==")
    print("temperature  distinct-2  반복 3-gram  perplexity  첫 번째 샘플")
    for temperature in TEMPERATURES:
        texts = temperature_generate(model, tokenizer, prompt, temperature, seed=SEED)
        tokens = [tokenizer.tokenize(t) for t in texts]
        repeats = sum(repeated_ngrams(t) for t in tokens) / len(tokens)
        ppl = sum(perplexity(model, tokenizer, t) for t in texts) / len(texts)
        print(f"{temperature:>11}  {distinct_n(tokens):>10.2f}  {repeats:>11.1f}  {ppl:>10.1f}  {texts[0]}")
    print("distinct-2(다섯 샘플의 2-gram 중 서로 다른 것의 비율)는 온도가 오를수록 커지고(다양해짐),\n"
          "perplexity(모델이 보기에 얼마나 뻔한 글인가)도 함께 커집니다(엉뚱해짐). 다양성과 자연스러움의 줄다리기입니다.\n"
          "낮은 온도는 greedy처럼 같은 말을 되풀이하고, 1.5쯤이면 문법이 무너지기 시작합니다.")

    print("\n== 3. 추천 조합 (do_sample, repetition_penalty=1.5, no_repeat_ngram_size=3, "
          "temperature=0.9, top_k=50, top_p=0.92) ==")
    for prompt in ["안녕하세요", "이 영화는", "배우들의 연기가"]:
        for _ in range(2):
            print(f"{prompt!r} → {recommended_generate(model, tokenizer, prompt)}")
    print("되풀이가 없고, 다양하면서도 temperature 0.9와 top-k/top-p가 엉뚱한 토큰을 걸러 줍니다.\n"
          "5단계 웹 서비스의 inference_fn이 이 조합을 기본값으로 씁니다.")


if __name__ == "__main__":
    main()
