"""Rebuild the embedded sample dataset (text and images) from scikit-image's bundled photographs.

The committed files under data/sample/ are this script's output; it is kept so that every image's
source photo and crop are on record (see NOTICE) and the sample can be regenerated or extended.

    pip download --no-deps scikit-image -d /tmp/ski && (cd /tmp/ski && unzip -q scikit_image-*.whl 'skimage/data/*')
    python data/sample/make_sample.py --skimage-data /tmp/ski/skimage/data

Tweets are written below in a small markup: tokens split on spaces, ``[TYPE w1 w2]`` marks an entity.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repo root, for comipn_prep.conll

from comipn_prep.conll import Tweet, atomic_write_bytes, format_conll  # noqa: E402

MAX_SIDE = 640
JPEG_QUALITY = 85

# photo key -> (file in skimage/data, licence line for NOTICE)
PHOTOS = {
    "astronaut": ("astronaut.png", "Eileen Collins, NASA Great Images database (https://flic.kr/p/r9qvLn); "
                  "no known copyright restrictions, public domain"),
    "rocket": ("rocket.jpg", "Falcon 9 / DSCOVR launch photo by SpaceX "
               "(https://www.flickr.com/photos/spacexphotos/16511594820/); released into the public domain by SpaceX"),
    "chelsea": ("chelsea.png", "Chelsea the cat, photo by Stefan van der Walt; no copyright restrictions, CC0"),
    "coffee": ("coffee.png", "Coffee cup, photo by Rachel Michetti (courtesy of Pikolo Espresso Bar); "
               "no copyright restrictions, CC0"),
    "camera": ("camera.png", "Man with a camera, photo by Lav Varshney; no copyright restrictions, CC0"),
    "hubble": ("hubble_deep_field.jpg", "Hubble eXtreme Deep Field, NASA "
               "(http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/); public domain"),
    "clock": ("clock_motion.png", "Motion-blurred wall clock, photo by Stefan van der Walt; "
              "released into the public domain by the photographer"),
    "coins": ("coins.png", "Greek coins from Pompeii, Brooklyn Museum Collection "
              "(https://www.brooklynmuseum.org/opencollection/archives/image/51611); no known copyright restrictions"),
}

# (split, imgid, photo, crop box as fractions (left, top, right, bottom), tweet markup).
# crop None = the whole photo. An imgid listed in MISSING gets no image file (deliberately absent).
TWEETS = [
    # --- train (24) ---
    ("train", "9100001", "astronaut", None,
     "RT @NASAhistory : [PER Eileen Collins] , the first woman to pilot a [MISC Space Shuttle] , in her "
     "launch suit at [LOC Johnson Space Center] http://t.co/x7Qe2Lk9"),
    ("train", "9100002", "astronaut", (0.1, 0.0, 0.7, 0.6),
     "Happy birthday to astronaut [PER Eileen Collins] ! [ORG #NASA] #WomenInSTEM"),
    ("train", "9100003", "astronaut", (0.62, 0.0, 1.0, 0.62),
     "That model of [MISC Discovery] behind her is the orbiter she flew on [MISC STS-63] in 1995 . [ORG @NASA]"),
    ("train", "9100004", "rocket", None,
     "[MISC Falcon 9] with [MISC DSCOVR] on the pad at [LOC Cape Canaveral] tonight [ORG #SpaceX]"),
    ("train", "9100005", "rocket", (0.3, 0.0, 0.7, 1.0),
     "RT @SpaceX : Launch of [ORG @NOAA] 's [MISC DSCOVR] satellite is go for tomorrow from [LOC Florida] "
     "http://t.co/3hVb9uWm"),
    ("train", "9100006", "rocket", (0.0, 0.0, 0.5, 1.0),
     "[PER Elon Musk] says every photo [ORG SpaceX] takes is now public domain . Nice one !"),
    ("train", "9100007", "chelsea", None,
     "Meet [PER Chelsea] , the office cat at our [LOC Cape Town] studio #caturday"),
    ("train", "9100008", "chelsea", (0.2, 0.0, 0.9, 1.0),
     "[PER Chelsea] is judging you for skipping the gym again"),
    ("train", "9100009", "chelsea", (0.3, 0.1, 0.9, 0.7),
     "Those eyes ! Our [PER Chelsea] would make a better mascot than the one at [LOC Stamford Bridge]"),
    ("train", "9100010", "coffee", None,
     "Morning espresso at [ORG Pikolo Espresso Bar] before the lecture"),
    ("train", "9100011", "coffee", (0.25, 0.0, 0.8, 0.9),
     "Best crema in [LOC Madison] , hands down . [ORG @PikoloEspresso] #coffee"),
    ("train", "9100012", "coffee", (0.55, 0.2, 0.95, 0.8),
     "[MISC National Coffee Day] ! Free refills at [ORG Starbucks] until noon http://t.co/Lm4Xw8Rt"),
    ("train", "9100013", "camera", None,
     "Shooting on film at [ORG MIT] this morning , the [LOC Great Dome] looks amazing in black and white"),
    ("train", "9100014", "camera", (0.0, 0.1, 0.7, 1.0),
     "RT @mitnews : A new classic for image processing classes , photo by [PER Lav Varshney] "
     "http://t.co/Vq2LmZ8e"),
    ("train", "9100015", "camera", (0.4, 0.2, 1.0, 0.6),
     "View across [LOC Killian Court] towards [LOC Cambridge] , [LOC Massachusetts]"),
    ("train", "9100016", "hubble", None,
     "The [MISC Hubble eXtreme Deep Field] : thousands of galaxies in one tiny patch of sky [ORG #NASA]"),
    ("train", "9100017", "hubble", (0.0, 0.0, 0.5, 0.5),
     "RT @HubbleTelescope : Some of these galaxies formed just 450 million years after the [MISC Big Bang] "
     "http://t.co/pW2eD7Ks"),
    ("train", "9100018", "hubble", (0.5, 0.0, 1.0, 0.5),
     "Every dot is a galaxy . Mind blown at the [ORG Space Telescope Science Institute] talk in [LOC Baltimore]"),
    ("train", "9100019", "clock", None,
     "Monday morning in the office , even the clock is blurry #MondayMotivation"),
    ("train", "9100020", "clock", (0.15, 0.1, 0.85, 0.9),
     "Where did the weekend go ? Back to [LOC Heathrow] for a 6 am flight with [ORG British Airways]"),
    ("train", "9100021", "clock", (0.3, 0.2, 0.7, 0.8),
     "Time flies when you revise for finals at [ORG Oxford University] with @tomh_93"),
    ("train", "9100022", "coins", None,
     "[MISC Greek] coins from [LOC Pompeii] in the [ORG Brooklyn Museum] collection http://t.co/Hj3Lx0Qa"),
    ("train", "9100023", "coins", (0.0, 0.0, 1.0, 0.4),
     "[PER Alexander the Great] on a silver tetradrachm , found near [LOC Naples]"),
    ("train", "9100024", "coins", (0.0, 0.0, 0.5, 1.0),
     "RT [ORG @brooklynmuseum] : Our open collection now has thousands of free images #OpenAccess"),
    # --- valid (8) ---
    ("valid", "9200001", "astronaut", (0.5, 0.55, 1.0, 1.0),
     "Helmet from the [MISC Columbia] mission on display in [LOC Houston] , [LOC Texas] next month #SpaceCityTX"),
    ("valid", "9200002", "rocket", (0.0, 0.5, 1.0, 1.0),
     "Lights on at [LOC Launch Complex 40] , waiting for the [MISC Falcon] to fly [MISC #DSCOVR]"),
    ("valid", "9200003", "chelsea", (0.0, 0.0, 0.6, 1.0),
     "RT @CatsOfTwitter : [PER Chelsea] from [LOC Stellenbosch] wins this week 's #CatOfTheWeek "
     "http://t.co/9dLk2Pq1"),
    ("valid", "9200004", "coffee", (0.0, 0.0, 0.6, 1.0),
     "Flat white and a good book . Reading [PER Haruki Murakami] at [ORG Pikolo] this afternoon"),
    ("valid", "9200005", "camera", (0.3, 0.5, 0.9, 1.0),
     "Got my new [ORG Nikon] tripod set up on [LOC Briggs Field] #photography"),
    ("valid", "9200006", "hubble", (0.0, 0.5, 0.5, 1.0),
     "[ORG ESA] and [ORG NASA] shared this image of the deep universe today"),
    ("valid", "9200007", "clock", (0.0, 0.0, 0.55, 1.0),
     "[LOC Big Ben] is silent for repairs , so this is my clock now . [LOC London] problems"),
    ("valid", "9200008", "coins", (0.5, 0.0, 1.0, 1.0),
     "Ancient [MISC Roman] money looks a lot cooler than the [MISC Euro]"),
    # --- test (8) ---
    ("test", "9300001", "astronaut", (0.0, 0.0, 0.75, 1.0),
     "Commander [PER Collins] retired from [ORG NASA] in 2006 after 38 days in space http://t.co/Rk2bQ0aZ"),
    ("test", "9300002", "rocket", (0.5, 0.0, 1.0, 1.0),
     "Watching the [ORG SpaceX] launch live from [LOC Cocoa Beach] with @jenny_m"),
    ("test", "9300003", "chelsea", (0.4, 0.4, 0.9, 1.0),
     "Vet day for [PER Chelsea] . The [ORG Blue Cross] clinic in [LOC London] was great with her"),
    ("test", "9300004", "coffee", (0.1, 0.3, 0.9, 1.0),
     "Is it just me or does every cafe in [LOC Seattle] use red cups now ? #CoffeeTalk"),
    ("test", "9300005", "camera", (0.0, 0.0, 1.0, 0.6),
     "Photo walk with the [ORG Boston Camera Club] along the [LOC Charles River] on Saturday"),
    ("test", "9300006", "hubble", (0.5, 0.5, 1.0, 1.0),
     "[PER Carl Sagan] would have loved this shot from [MISC Hubble] #space"),
    ("test", "9300007", "clock", (0.45, 0.0, 1.0, 1.0),
     "Daylight saving time ends on Sunday in the [LOC United States] , set your clocks back"),
    ("test", "9300008", "coins", (0.0, 0.5, 1.0, 1.0),
     "Saw these at the [ORG British Museum] today , [PER Athena] on every other coin #history"),
]
MISSING = {"9100012"}  # this tweet's image is deliberately absent (loaders must mask it)


def parse_markup(text: str) -> tuple[list[str], list[str]]:
    """Tokens and BIO labels from ``word [TYPE w1 w2] word`` markup."""
    tokens: list[str] = []
    labels: list[str] = []
    etype: str | None = None
    first = False
    for piece in text.split(" "):
        if piece.startswith("[") and len(piece) > 1 and etype is None:
            etype, first = piece[1:], True
            continue
        closes = etype is not None and piece.endswith("]") and len(piece) > 1
        word = piece[:-1] if closes else piece
        if etype is None:
            tokens.append(word)
            labels.append("O")
        else:
            tokens.append(word)
            labels.append(("B-" if first else "I-") + etype)
            first = False
        if closes:
            etype = None
    if etype is not None:
        raise ValueError(f"unclosed entity in: {text}")
    return tokens, labels


def make_image(src: Path, crop: tuple[float, float, float, float] | None) -> bytes:
    """The crop (fractions of width/height) of ``src``, RGB, longest side <= MAX_SIDE, as JPEG bytes."""
    with Image.open(src) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        if crop is not None:
            w, h = im.size
            l, t, r, b = crop
            im = im.crop((round(l * w), round(t * h), round(r * w), round(b * h)))
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        return buf.getvalue()


def notice_rows() -> list[str]:
    rows = []
    for split, imgid, photo, crop, _ in TWEETS:
        if imgid in MISSING:
            rows.append(f"{imgid}.jpg  (absent on purpose: the {split} tweet {imgid} has no image)")
            continue
        what = "whole photo" if crop is None else "crop " + ",".join(f"{c:.2f}" for c in crop)
        rows.append(f"{imgid}.jpg  skimage/data/{PHOTOS[photo][0]}  {what}")
    return rows


def build(skimage_data: Path, out: Path) -> None:
    by_split: dict[str, list[Tweet]] = {"train": [], "valid": [], "test": []}
    images = out / "sample_images"
    images.mkdir(parents=True, exist_ok=True)
    for split, imgid, photo, crop, markup in TWEETS:
        tokens, labels = parse_markup(markup)
        by_split[split].append(Tweet(imgid=imgid, tokens=tokens, raw_labels=labels))
        if imgid not in MISSING:
            atomic_write_bytes(images / f"{imgid}.jpg", make_image(skimage_data / PHOTOS[photo][0], crop))
    for split, tweets in by_split.items():
        atomic_write_bytes(out / "sample" / f"{split}.txt", format_conll(tweets).encode("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skimage-data", type=Path, required=True, help="the skimage/data folder of the wheel")
    parser.add_argument("--out", type=Path, default=HERE, help="output root (default: this folder)")
    parser.add_argument("--print-notice-rows", action="store_true", help="print the per-image NOTICE rows")
    args = parser.parse_args()
    if args.print_notice_rows:
        print("\n".join(notice_rows()))
        return
    build(args.skimage_data, args.out)


if __name__ == "__main__":
    main()
