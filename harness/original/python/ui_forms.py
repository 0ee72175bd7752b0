"""Forms the registration UI would post, for test/ui-forms.test.ts.

Random candidates are cleaned by a Django form declared from the UI's form
facts (UKTradeInvestment/directory-form-ui, ui/forms.py, as issue 19 lists
them; its source is not in this repository): CharField max_length 255 for the
names, website and phone number, EmailField max_length 255 for both addresses
(equal ignoring case), a 'True'/'False' choice, two BooleanFields, a choice of
marketing source and two CharFields without max_length. Only what Django's own
validators accept is written out, one line per form: the text the UI posts as
`data`, `json.dumps(form.cleaned_data)`. A summary goes to stderr as JSON.

Usage: python ui_forms.py COUNT SEED MAX_BODY_BYTES
"""
import json
import random
import sys
from urllib.parse import urlencode

import django
from django.conf import settings

settings.configure(USE_I18N=False)
django.setup()

from django import forms  # noqa: E402  (after settings)

# Nine marketing sources (the UI's labels are not in this repository; our schema takes any string).
MARKETING_SOURCES = [
    "Social media", "Print or radio advertising", "Outdoor advertisement", "Internet search", "Bank",
    "Trade show or event", "Word of mouth", "Email", "Other",
]


class UiForm(forms.Form):
    company_name = forms.CharField(max_length=255)
    contact_name = forms.CharField(max_length=255)
    email_address1 = forms.EmailField(max_length=255)
    email_address2 = forms.EmailField(max_length=255)
    phone_number = forms.CharField(max_length=255, required=False)
    website = forms.CharField(max_length=255)
    exporting = forms.ChoiceField(choices=[("True", "Yes"), ("False", "No")])
    agree_terms = forms.BooleanField()
    opt_in = forms.BooleanField(required=False)
    marketing_source = forms.ChoiceField(choices=[("", "")] + [(s, s) for s in MARKETING_SOURCES], required=False)
    marketing_source_bank = forms.CharField(required=False)
    marketing_source_other = forms.CharField(required=False)

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("email_address1"), cleaned.get("email_address2")
        if first and second and first.lower() != second.lower():
            raise forms.ValidationError("The e-mail addresses do not match")
        return cleaned


# Character pools: ASCII, Latin-1 and other scripts, right-to-left, CJK, combining marks, astral
# (emoji, historic scripts), controls, zero-width and spaces.
POOLS = [
    [chr(c) for c in range(0x20, 0x7F)],
    [chr(c) for c in range(0xA0, 0x250)],
    [chr(c) for c in range(0x370, 0x3FF)] + [chr(c) for c in range(0x400, 0x4FF)],
    [chr(c) for c in range(0x5D0, 0x5EA)] + [chr(c) for c in range(0x620, 0x64A)],
    [chr(c) for c in range(0x4E00, 0x4F00)] + [chr(c) for c in range(0x3040, 0x30FF)],
    [chr(c) for c in range(0x300, 0x36F)],
    [chr(c) for c in range(0x1F300, 0x1F64F)] + [chr(c) for c in range(0x10400, 0x1044F)],
    [chr(c) for c in range(0x01, 0x20)] + ["\u200b", "\u200d", "\u2028", "\ufeff", "\u3000"],
]
ATOM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-" + "\u0130\u0131\u017f\u212a"
QUOTED = [chr(c) for c in range(0x01, 0x80) if c not in (0x0A, 0x0D, 0x00)] + ["\u017f"]
IDN = POOLS[1] + POOLS[2] + POOLS[3] + POOLS[4] + POOLS[6] + ["\u00df", "\u03c2", "\u200d", "\uff0e", "\u3002"]


def text(rng, length):
    pool_weights = [6, 2, 2, 1, 1, 1, 1, 1]
    out = []
    for _ in range(length):
        pool = rng.choices(POOLS, weights=pool_weights)[0]
        out.append(rng.choice(pool))
    return "".join(out)


def length(rng, limit=255):
    return rng.choice([1, 2, rng.randint(1, 40), rng.randint(1, limit), limit, limit - 1, limit + 1])


def label(rng, idn):
    n = rng.choice([1, 2, rng.randint(1, 20), 63, 64])
    chars = "abcdefghijklmnopqrstuvwxyz0123456789-"
    if not idn:
        return "".join(rng.choice(chars) for _ in range(n))
    return "".join(rng.choice(IDN) if rng.random() < 0.5 else rng.choice(chars) for _ in range(max(1, n // 3)))


def email(rng, kinds):
    if rng.random() < 0.15:
        user = '"' + "".join(rng.choice(QUOTED) for _ in range(rng.randint(0, 12))) + '"'
    else:
        user = ".".join("".join(rng.choice(ATOM) for _ in range(rng.randint(1, 10))) for _ in range(rng.randint(1, 3)))
    kind = rng.choices(["ascii", "idn", "ipv4", "ipv6", "localhost"], weights=[4, 4, 1, 1, 0.3])[0]
    if kind == "ipv4":
        domain = "[" + ".".join(str(rng.choice([0, 1, 9, 10, 99, 127, 255, 256, rng.randint(0, 300)])) for _ in range(4)) + "]"
    elif kind == "ipv6":
        parts = ["%x" % rng.randint(0, 0xFFFF) for _ in range(8)]
        forms_ = [":".join(parts), "::1", "::", "::ffff:1.2.3.4", ":".join(parts[:3]) + "::" + parts[7], "fe80::1%eth0"]
        domain = "[" + rng.choice(forms_) + "]"
    elif kind == "localhost":
        domain = "localhost"
    else:
        domain = ".".join(label(rng, kind == "idn") for _ in range(rng.randint(1, 3)))
        domain += "." + rng.choice(["com", "uk", "co.uk", "museum", "xn--p1ai", "рф", "テスト", "c", "c0m-"])
    kinds.append(kind)
    return user + "@" + domain


def flip_case(rng, value):
    return "".join(c.upper() if rng.random() < 0.3 else c for c in value)


def candidate(rng, kinds):
    address = email(rng, kinds)
    data = {
        "company_name": text(rng, length(rng)),
        "contact_name": text(rng, length(rng)),
        "email_address1": address,
        "email_address2": flip_case(rng, address) if rng.random() < 0.5 else address,
        "website": text(rng, length(rng)),
        "exporting": rng.choice(["True", "False"]),
        "agree_terms": "on",
    }
    if rng.random() < 0.7:
        data["phone_number"] = text(rng, length(rng))
    if rng.random() < 0.5:
        data["opt_in"] = "on"
    if rng.random() < 0.8:
        data["marketing_source"] = rng.choice([""] + MARKETING_SOURCES)
    for field in ("marketing_source_bank", "marketing_source_other"):
        if rng.random() < 0.3:
            data[field] = text(rng, rng.choice([rng.randint(1, 300), rng.randint(2001, 8000)]))
    return data


def main():
    count, seed, max_body = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    summary = {"seed": seed, "candidates": 0, "refused_by_django": 0, "over_max_body": 0, "written": 0,
               "emails": {}, "long_marketing_text": 0, "astral": 0}
    while summary["written"] < count and summary["candidates"] < count * 200:
        summary["candidates"] += 1
        kinds = []
        form = UiForm(data=candidate(rng, kinds))
        if not form.is_valid():
            summary["refused_by_django"] += 1
            continue
        data = json.dumps(form.cleaned_data)
        if len(urlencode({"data": data})) > max_body:
            summary["over_max_body"] += 1
            continue
        cleaned = form.cleaned_data
        summary["written"] += 1
        summary["emails"][kinds[0]] = summary["emails"].get(kinds[0], 0) + 1
        if any(len(cleaned[f]) > 2000 for f in ("marketing_source_bank", "marketing_source_other")):
            summary["long_marketing_text"] += 1
        if any(isinstance(v, str) and any(ord(c) > 0xFFFF for c in v) for v in cleaned.values()):
            summary["astral"] += 1
        sys.stdout.write(data + "\n")
    sys.stderr.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
