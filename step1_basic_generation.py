"""1단계: 기본 생성 — 토큰화, greedy 디코딩, 손으로 짠 생성 루프

배울 것
  1. 모델 이름 하나로 GPT-2(KoGPT2) 모델과 토크나이저를 불러오기 (from_pretrained)
  2. 문장이 토큰 id의 목록으로 바뀌는 모습
  3. model.generate(do_sample=False): 매번 가장 확률이 높은 토큰을 고르는 greedy 디코딩
  4. generate가 속에서 하는 일: forward → 마지막 위치의 logits → argmax → 이어 붙이기를 반복
  5. greedy의 약점: 길게 만들면 같은 말을 되풀이합니다

실행 (저장소 루트에서)
  python step1_basic_generation.py     # 실습 파일: '# TODO 1-n' 빈칸의 todo()를 코드로 바꾼 뒤
  python solutions/step1_solution.py   # 정답 파일
  kogen check step1                    # 자동 채점 (정답 파일은 kogen check step1 --solutions)
  KOGEN_MODEL=bundled python ...       # 인터넷 없이 내장 소형 모델로 (오프라인이면 저절로 이렇게 됩니다)
"""
import os
import time

import torch
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from kogen.exercises import todo  # noqa: F401  (실습 파일의 빈칸)
from kogen.models import model_label, resolve_model

# TODO 1-1: 쓸 모델의 이름: 환경 변수 KOGEN_MODEL이 있으면 그 값, 없으면 기본 허브 id "skt/kogpt2-base-v2".
#   찾아볼 것: os.environ.get
MODEL_NAME = todo()
PROMPTS = ["안녕하세요", "이 영화는", "배우들의 연기가"]
LONG = 150  # 캐시의 효과를 볼 만큼 긴 글(새 토큰 수)


def load_model_and_tokenizer(name):
    """(model, tokenizer): 허브 id(또는 폴더)에서 GPT-2 모델과 KoGPT2 토크나이저를 불러옵니다."""
    # 허브 id → 내려받아 둔 폴더. 인터넷이 없으면 내장 소형 모델 폴더로 바꾸고 한 줄로 알려 줍니다
    path = resolve_model(name)
    # TODO 1-2: 사전학습된 GPT-2 모델을 path에서 불러오세요.
    #   찾아볼 것: GPT2LMHeadModel.from_pretrained
    model = todo()
    # TODO 1-3: KoGPT2 토크나이저를 path에서 불러오세요.
    #   찾아볼 것: PreTrainedTokenizerFast.from_pretrained
    #   KoGPT2는 특수 토큰(bos, eos, unk, pad, mask)의 이름을 직접 알려 줘야 합니다(README_stepwise_learning.md 1단계).
    tokenizer = todo()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # eval(): 드롭아웃을 꺼서 같은 입력에는 늘 같은 출력이 나오게 합니다
    return model.to(device).eval(), tokenizer


def greedy_generate(model, tokenizer, prompt, max_new_tokens=30, min_new_tokens=0):
    """prompt를 greedy 디코딩으로 이어 쓴 글(프롬프트와 특수 토큰 포함)."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)  # (1, T)
    # TODO 1-4: greedy 디코딩(샘플링 없이 매번 가장 높은 점수)으로 이어 쓰세요.
    #   찾아볼 것: model.generate의 do_sample, max_new_tokens, min_new_tokens
    output_ids = todo()
    return tokenizer.decode(output_ids[0])  # (1, T + 새 토큰 수) → 문자열


@torch.no_grad()  # 학습이 아니니 기울기를 계산하지 않습니다: 빠르고 메모리도 덜 씁니다
def greedy_by_hand(model, tokenizer, prompt, max_new_tokens=30, min_new_tokens=0):
    """model.generate(do_sample=False)가 속에서 하는 일을 그대로 풀어 쓴 루프."""
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)  # (1, T)
    for step in range(max_new_tokens):
        # forward: 위치마다 '다음 토큰'의 점수(logits)가 어휘 크기만큼 나옵니다
        logits = model(input_ids).logits  # (1, T, vocab)
        # 마지막 위치만 봅니다: 지금 문장 바로 다음에 올 토큰의 점수
        next_logits = logits[:, -1, :]  # (1, vocab)
        if step < min_new_tokens:  # min_new_tokens: 그만큼 쓰기 전에는 </s>를 고르지 못하게 점수를 -∞로
            next_logits[:, tokenizer.eos_token_id] = float("-inf")
        # TODO 1-5: greedy: 점수가 가장 큰 토큰의 id를 고르세요. 이어 붙이려면 모양이 (1, 1)이어야 합니다.
        #   찾아볼 것: Tensor.argmax의 dim, keepdim
        next_id = todo()
        # 이어 붙이기: 다음 반복에서는 늘어난 문장 전체를 다시 넣습니다
        input_ids = torch.cat([input_ids, next_id], dim=1)  # (1, T + 1)
        # 끝 토큰 </s>가 나오면 멈춥니다: generate도 eos_token_id에서 멈춥니다
        if next_id.item() == tokenizer.eos_token_id:
            break
    return tokenizer.decode(input_ids[0])


def repeated_ngrams(ids, n=3):
    """같은 n-gram이 두 번째 이후로 나온 횟수: 0이면 되풀이가 없습니다."""
    grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
    return len(grams) - len(set(grams))


def main():
    t = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(MODEL_NAME)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"모델: {model_label(MODEL_NAME, model.name_or_path)} ({n_params / 1e6:.1f}M 매개변수, "
          f"층 {model.config.n_layer}개, 어휘 {model.config.vocab_size}개, 장치 {model.device}) — "
          f"불러오는 데 {time.perf_counter() - t:.1f}초\n  불러온 폴더: {model.name_or_path}")

    print("\n== 1. 토큰화: 문장 → 토큰 id ==")
    for prompt in PROMPTS:
        ids = tokenizer.encode(prompt)
        tokens = tokenizer.convert_ids_to_tokens(ids)
        # ▁ 표시는 '앞에 띄어쓰기가 있던 자리'입니다 (SentencePiece 방식)
        print(f"{prompt!r} → id {ids} → 토큰 {tokens}")
    print(f"특수 토큰: eos={tokenizer.eos_token!r}(id {tokenizer.eos_token_id}), "
          f"pad={tokenizer.pad_token!r}(id {tokenizer.pad_token_id}), unk={tokenizer.unk_token!r}")

    print("\n== 2. greedy 디코딩: model.generate(do_sample=False) ==")
    print("  시간  생성 결과 (</s>는 '글 끝' 토큰)")
    for prompt in PROMPTS:
        t = time.perf_counter()
        text = greedy_generate(model, tokenizer, prompt, max_new_tokens=30)
        print(f"{time.perf_counter() - t:5.2f}s  {text}")
    print("같은 프롬프트는 몇 번을 돌려도 같은 결과입니다: greedy는 무작위성이 없습니다.\n"
          "</s>가 일찍 나오면 모델이 '여기서 글이 끝난다'고 본 것입니다. 내장 소형 모델은 영화 리뷰로만 배워서\n"
          "인사말 뒤는 잘 잇지 못합니다. KoGPT2는 위키·뉴스 등 큰 말뭉치로 배워 더 길게 잇습니다.")

    print("\n== 3. 손으로 짠 생성 루프와 model.generate 비교 ==")
    print("  루프   generate  같음  결과")
    for prompt in PROMPTS:
        t0 = time.perf_counter()
        mine = greedy_by_hand(model, tokenizer, prompt, max_new_tokens=30)
        t1 = time.perf_counter()
        ref = greedy_generate(model, tokenizer, prompt, max_new_tokens=30)
        t2 = time.perf_counter()
        print(f"{t1 - t0:5.2f}s {t2 - t1:8.2f}s   {'✅' if mine == ref else '❌'}   {mine}")
    # 짧은 글에서는 차이가 작습니다. 캐시의 효과는 길이가 길어야 보입니다
    n = min(LONG, model.config.n_positions - 8)
    t0 = time.perf_counter()
    mine = greedy_by_hand(model, tokenizer, PROMPTS[1], max_new_tokens=n, min_new_tokens=n)
    t1 = time.perf_counter()
    ref = greedy_generate(model, tokenizer, PROMPTS[1], max_new_tokens=n, min_new_tokens=n)
    t2 = time.perf_counter()
    print(f"새 토큰 {n}개: 루프 {t1 - t0:.2f}s, generate {t2 - t1:.2f}s — generate가 {(t1 - t0) / (t2 - t1):.1f}배 빠름, "
          f"같은 글 {'✅' if mine == ref else '❌'}")
    print("결과는 같고, 차이는 속도뿐입니다. generate는 앞 토큰들의 key/value를 캐시에 두고(use_cache) 새 토큰 하나만\n"
          "계산하지만, 우리 루프는 매번 문장 전체를 다시 계산합니다. 그래서 글이 길수록 차이가 커집니다(루프의 일은 길이의 제곱에 비례).")

    print("\n== 4. greedy의 약점: 길게 만들면 되풀이합니다 ==")
    prompt = PROMPTS[1]
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    # min_new_tokens: 80개를 채우기 전에는 </s>를 고르지 못하게 막아 끝까지 이어 쓰게 합니다
    output_ids = model.generate(input_ids, do_sample=False, max_new_tokens=80, min_new_tokens=80)
    new_ids = output_ids[0, input_ids.shape[1]:].tolist()
    print(tokenizer.decode(output_ids[0], skip_special_tokens=True))
    print(f"새 토큰 {len(new_ids)}개 중 되풀이된 3-gram: {repeated_ngrams(new_ids)}번. "
          f"한 번 고른 길에서 벗어나지 못해 같은 구절을 돕니다 → 2·3단계에서 고칩니다.")


if __name__ == "__main__":
    main()
