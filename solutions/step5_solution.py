"""5단계: 웹 서비스 — 4단계에서 미세조정한 모델을 Flask 웹 서비스로 띄우기

배울 것
  1. 배포 설정 GenerationDeployArguments: 체크포인트 폴더(4단계의 가장 최근 실행)에서 val_loss가 가장 낮은 .ckpt를 고릅니다
  2. 체크포인트의 가중치를 모델에 넣기: model.load_state_dict(...)
  3. 장치 고르기: GPU가 있으면 "cuda", 없으면 "cpu"
  4. inference_fn: 웹 요청의 값(prompt, min_length, max_length, top_p, top_k, repetition_penalty,
     no_repeat_ngram_size, temperature)으로 글 하나를 만드는 함수 (ratsnlp와 같은 모양)
  5. Flask 앱을 만들고(get_web_service_app) 실행하기(app.run), 브라우저와 curl로 써 보기

실행 (저장소 루트에서; 4단계를 먼저 실행해 두면 미세조정한 모델을, 아니면 기본 모델을 서비스합니다)
  python step5_web_service.py        # 실습 파일: '# TODO 5-n' 빈칸의 todo()를 코드로 바꾼 뒤
  python solutions/step5_solution.py # 정답 파일
  kogen check step5                  # 자동 채점 (빈 포트에 서버를 띄워 POST /api를 보내 봅니다)
  브라우저: http://127.0.0.1:9001    끝내기: Ctrl+C
  curl -s http://127.0.0.1:9001/api -H 'Content-Type: application/json' -d '{"prompt": "긍정 아 정말",
    "min_length": 10, "max_length": 40, "top_p": 0.92, "top_k": 50, "repetition_penalty": 1.5,
    "no_repeat_ngram_size": 3, "temperature": 0.9}'

환경 변수 (모두 선택)
  KOGEN_PORT (9001), KOGEN_HOST (127.0.0.1), KOGEN_CHECKPOINT_DIR (checkpoints/step4),
  KOGEN_MODEL / KOGEN_QUICK (4단계와 같은 규칙: 학습한 모델과 같은 모델이어야 체크포인트가 맞습니다)
"""
import os
import socket
import sys
import time

import torch
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from kogen import GenerationDeployArguments
from kogen.deploy import load_checkpoint_state_dict
from kogen.exercises import todo  # noqa: F401  (실습 파일의 빈칸)
from kogen.models import resolve_model
from kogen.training import best_checkpoint, describe_run
from kogen.web import get_web_service_app

QUICK = os.environ.get("KOGEN_QUICK", "0" if torch.cuda.is_available() else "1") == "1"
MODEL_NAME = os.environ.get("KOGEN_MODEL") or ("bundled" if QUICK else "skt/kogpt2-base-v2")
CHECKPOINT_DIR = os.environ.get("KOGEN_CHECKPOINT_DIR", "checkpoints/step4")
HOST = os.environ.get("KOGEN_HOST", "127.0.0.1")
PORT = int(os.environ.get("KOGEN_PORT", 9001))


def pick_device():
    """웹 서비스가 쓸 장치."""
    # BEGIN SOLUTION 장치를 고르세요: GPU가 있으면 "cuda", 없으면 "cpu".
    #   찾아볼 것: torch.cuda.is_available
    # API: return "cuda" if 조건 else "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"
    # END SOLUTION


def load_finetuned(model_name, checkpoint_dir, device):
    """(model, tokenizer, 이름): 4단계 체크포인트의 가중치를 넣은 모델. 체크포인트가 없으면 기본 모델 그대로."""
    path = resolve_model(model_name)
    model = GPT2LMHeadModel.from_pretrained(path)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(
        path, bos_token="</s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    if best_checkpoint(checkpoint_dir) is None:
        print(f"⚠ {checkpoint_dir}에 4단계 체크포인트(epoch=N-val_loss=X.XX.ckpt)가 없어 미세조정 전 기본 모델"
              f"({model_name})을 서비스합니다.\n  python step4_model_training.py를 먼저 실행하면 '긍정/부정'을 아는 모델이 됩니다.")
        return model.to(device).eval(), tokenizer, f"{model_name} (미세조정 전)"
    # BEGIN SOLUTION 배포 설정을 만드세요: 모델 이름과 체크포인트 폴더를 주면 val_loss가 가장 낮은 체크포인트를 찾습니다.
    #   찾아볼 것: GenerationDeployArguments
    #   찾은 파일의 경로는 args.downstream_model_checkpoint_fpath에 들어갑니다.
    # API: GenerationDeployArguments(pretrained_model_name=..., downstream_model_dir=...)
    args = GenerationDeployArguments(pretrained_model_name=model_name, downstream_model_dir=checkpoint_dir)
    # END SOLUTION
    # BEGIN SOLUTION 체크포인트의 가중치를 모델에 넣으세요.
    #   찾아볼 것: model.load_state_dict, load_checkpoint_state_dict
    #   (load_checkpoint_state_dict: .ckpt에서 가중치만 꺼내 Lightning이 붙인 'model.' 접두어를 뗍니다)
    # API: model.load_state_dict(load_checkpoint_state_dict(체크포인트_경로))
    model.load_state_dict(load_checkpoint_state_dict(args.downstream_model_checkpoint_fpath))
    # END SOLUTION
    # 폴더에는 가장 최근 실행(같은 설정)의 체크포인트만 있습니다: 4단계가 다른 설정의 옛 체크포인트를 previous/로 옮깁니다
    print(f"체크포인트를 넣었습니다: {args.downstream_model_checkpoint_fpath}\n  ({describe_run(checkpoint_dir)})")
    name = f"{model_name} + {os.path.basename(args.downstream_model_checkpoint_fpath)}"
    return model.to(device).eval(), tokenizer, name


def make_inference_fn(model, tokenizer, device):
    """웹 서비스의 POST /api가 부를 함수를 만듭니다. 기본값은 3단계의 추천 조합입니다."""

    def inference_fn(prompt, min_length=10, max_length=40, top_p=0.92, top_k=50, repetition_penalty=1.5,
                     no_repeat_ngram_size=3, temperature=0.9):
        input_ids = tokenizer.encode(prompt, return_tensors="pt").to(device)  # (1, T)
        # ratsnlp처럼 길이는 프롬프트까지 센 토큰 수입니다. 적어도 한 토큰은 새로 쓰고, 모델의 최대 길이는 넘지 않게
        max_length = min(max(max_length, input_ids.shape[1] + 1), model.config.n_positions)
        with torch.no_grad():
            # BEGIN SOLUTION 받은 값 그대로 샘플링으로 생성하세요: 웹 요청마다 다른 글이 나와야 합니다.
            #   찾아볼 것: generate의 do_sample, min_length, max_length
            #   받은 값(min_length, max_length, top_p, top_k, repetition_penalty, no_repeat_ngram_size, temperature)을 같은 이름의 인자로.
            # API: model.generate(input_ids, do_sample=..., min_length=min_length, max_length=max_length, top_p=top_p, ...)
            output_ids = model.generate(input_ids, do_sample=True, min_length=min_length, max_length=max_length,
                                        top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty,
                                        no_repeat_ngram_size=no_repeat_ngram_size, temperature=temperature)
            # END SOLUTION
        return tokenizer.decode(output_ids[0], skip_special_tokens=True)

    return inference_fn


def main():
    device = pick_device()
    model, tokenizer, model_name = load_finetuned(MODEL_NAME, CHECKPOINT_DIR, device)
    inference_fn = make_inference_fn(model, tokenizer, device)

    # 서버를 열기 전에 한 번 불러 봅니다: 잘못된 곳이 있으면 지금 드러나고, 첫 손님이 기다리지 않습니다
    print("\n== 시험 생성 (inference_fn 기본값 = 3단계의 추천 조합) ==")
    for prompt in ["긍정 아 정말", "부정 아 정말"]:
        t = time.perf_counter()
        text = inference_fn(prompt)
        print(f"{time.perf_counter() - t:5.2f}s  {text}")

    # BEGIN SOLUTION Flask 앱을 만드세요: POST /api 요청이 오면 inference_fn이 불립니다.
    #   찾아볼 것: kogen.web.get_web_service_app
    # API: get_web_service_app(inference_fn, model=..., tokenizer=..., model_name=..., device=...)
    app = get_web_service_app(inference_fn, model=model, tokenizer=tokenizer, model_name=model_name, device=device)
    # END SOLUTION
    print(f"\n== 웹 서비스: http://{HOST}:{PORT} (모델 {model_name}, 장치 {device}) — 끝내려면 Ctrl+C ==\n"
          f"브라우저로 열거나, 다른 터미널에서:\n"
          f"  curl -s http://{HOST}:{PORT}/api -H 'Content-Type: application/json' -d '{{\"prompt\": \"긍정 아 정말\", "
          f"\"min_length\": 10, \"max_length\": 40, \"top_p\": 0.92, \"top_k\": 50, \"repetition_penalty\": 1.5, "
          f"\"no_repeat_ngram_size\": 3, \"temperature\": 0.9}}'\n"
          f"(Flask의 개발용 서버입니다. 여럿이 쓰는 서비스에는 kogen serve를 쓰세요: waitress 위에서 돕니다.)")
    with socket.socket() as s:  # 이미 쓰이는 포트면 Flask의 영어 오류 대신 할 일을 한국어로
        if s.connect_ex((HOST, PORT)) == 0:
            sys.exit(f"포트 {PORT}이(가) 이미 쓰이고 있습니다. 켜 둔 서버(다른 터미널의 5단계나 kogen serve)를 끄거나 "
                     f"KOGEN_PORT=9002 python {os.path.basename(__file__)}처럼 다른 포트를 쓰세요.")
    # BEGIN SOLUTION 서버를 실행하세요(HOST, PORT).
    #   찾아볼 것: Flask의 app.run
    # API: app.run(host=..., port=...)
    app.run(host=HOST, port=PORT)
    # END SOLUTION


if __name__ == "__main__":
    main()
