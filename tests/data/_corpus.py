"""The bad-file corpus: one broken file per rule, with the issue kind and 1-based line it must produce."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

BOM = b"\xef\xbb\xbf"


def chat(i: int, *, assistant: str | None = None) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": f"What is {i} + {i}?"},
            {"role": "assistant", "content": assistant or f"{2 * i}."},
        ]
    }


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def jsonl(*rows: Any, n_good: int = 12, at: int | None = None, end: bytes = b"\n") -> bytes:
    """`n_good` valid chat examples with `rows` (objects or raw bytes) inserted at 1-based line `at`
    (default: after the good ones)."""
    good = [dumps(chat(i)) for i in range(n_good)]
    bad = [r if isinstance(r, bytes) else dumps(r) for r in rows]
    index = len(good) if at is None else at - 1
    lines = good[:index] + bad + good[index:]
    return b"\n".join(lines) + end


def rows(*objs: Any, end: bytes = b"\n") -> bytes:
    return b"\n".join(o if isinstance(o, bytes) else dumps(o) for o in objs) + end


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text, **extra}


def pair(i: int) -> dict[str, Any]:
    """A preference pair as message lists: a prompt, the chosen and the rejected reply."""
    return {
        "prompt": [user(f"What is {i} + {i}?")],
        "chosen": [assistant(f"{2 * i}.")],
        "rejected": [assistant(f"{2 * i + 1}, I think.")],
    }


def text_pair(i: int) -> dict[str, Any]:
    return {"prompt": f"Q: {i} + {i} = ?", "chosen": f" {2 * i}", "rejected": f" {2 * i + 1}"}


def conversation_pair(i: int) -> dict[str, Any]:
    """Whole conversations, no prompt column: the prompt is everything before the last message."""
    prompt = [{"role": "system", "content": "You are terse."}, user(f"What is {i} + {i}?")]
    return {
        "chosen": [*prompt, assistant(f"{2 * i}.")],
        "rejected": [*prompt, assistant(f"{2 * i + 1}, I think.")],
    }


def _pairs(make: Any = pair, n: int = 12) -> list[dict[str, Any]]:
    return [make(i) for i in range(n)]


@dataclass
class Case:
    """One file of the corpus and the issue it must produce."""

    id: str
    task: str
    content: bytes
    kind: str
    line: int | None
    severity: str = "error"
    name: str = "data.jsonl"
    options: dict[str, Any] = field(default_factory=dict)
    byte_offset: int | None = None
    field: str | None = None


def _classification(n: int = 12) -> list[dict[str, Any]]:
    return [{"text": f"sample text {i}", "label": ["pos", "neg"][i % 2]} for i in range(n)]


def _tokens(n: int = 12) -> list[dict[str, Any]]:
    return [{"tokens": ["EU", "rejects", f"item{i}"], "ner_tags": ["B-ORG", "O", "O"]} for i in range(n)]


def _qa(n: int = 12) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        context = f"The answer number {i} is forty two."
        out.append(
            {
                "context": context,
                "question": f"What is answer {i}?",
                "answers": {"text": ["forty two"], "answer_start": [context.index("forty two")]},
            }
        )
    return out


def _summ(n: int = 12) -> list[dict[str, Any]]:
    return [
        {"document": f"A long document number {i} about things.", "summary": f"Doc {i}."} for i in range(n)
    ]


def _trans(n: int = 12) -> list[dict[str, Any]]:
    return [
        {"source": f"hello {i}", "target": f"hallo {i}", "source_lang": "en", "target_lang": "de"}
        for i in range(n)
    ]


def _insert(good: list[dict[str, Any]], at: int, *bad: Any) -> bytes:
    objs: list[Any] = list(good)
    objs[at - 1 : at - 1] = list(bad)
    return rows(*objs)


CHAT = "chat-completion"
PREF = "preference"  # the data kind of method.objective dpo and orpo
CASES: list[Case] = [
    # ---- file-level (JSON Lines) ----------------------------------------------------------------
    Case("invalid_json", CHAT, jsonl(b'{"messages": [}', at=3), "invalid_json", 3),
    Case("invalid_json_single_quotes", CHAT, jsonl(b"{'messages': []}", at=7), "invalid_json", 7),
    Case(
        "truncated_last_line",
        CHAT,
        jsonl(b'{"messages": [{"role": "user", "con', end=b""),
        "truncated_line",
        13,
    ),
    Case(
        "invalid_utf8_latin1",
        CHAT,
        jsonl(
            b'{"messages": [{"role": "user", "content": "caf\xe9"}, {"role": "assistant", "content": "ok"}]}',
            at=4,
        ),
        "invalid_utf8",
        4,
    ),
    Case("not_an_object_array", CHAT, jsonl(b"[1, 2, 3]", at=2), "not_an_object", 2),
    Case("not_an_object_string", CHAT, jsonl(b'"just text"', at=5), "not_an_object", 5),
    Case("json_array_file", CHAT, dumps([chat(i) for i in range(12)]) + b"\n", "not_an_object", 1),
    Case(
        "pretty_printed",
        CHAT,
        json.dumps(chat(0), indent=2).encode() + b"\n" + json.dumps(chat(1), indent=2).encode() + b"\n",
        "not_json_lines",
        1,
    ),
    Case("stray_bom_concatenated", CHAT, jsonl(BOM + dumps(chat(99)), at=6), "stray_bom", 6),
    Case("blank_line", CHAT, jsonl(b"", at=4), "blank_line", 4, "warning"),
    Case("whitespace_line", CHAT, jsonl(b"   \t", at=9), "blank_line", 9, "warning"),
    Case("duplicate", CHAT, jsonl(chat(2), at=11), "duplicate_example", 11, "warning"),
    Case(
        "duplicate_reordered_keys",
        CHAT,
        jsonl({"messages": [{"content": m["content"], "role": m["role"]} for m in chat(0)["messages"]]}),
        "duplicate_example",
        13,
        "warning",
    ),
    Case("crlf", CHAT, jsonl().replace(b"\n", b"\r\n"), "crlf_line_endings", 1, "warning"),
    Case("too_few_examples", CHAT, jsonl(n_good=3), "too_few_examples", None, "warning"),
    Case("too_few_serverless", CHAT, jsonl(n_good=9), "too_few_examples", None, options={"serverless": True}),
    Case("empty_file", CHAT, b"", "empty_file", None),
    Case("only_blank_lines", CHAT, b"\n\n  \n", "empty_file", None),
    Case(
        "missing_bom_serverless", CHAT, jsonl(), "missing_bom", None, "warning", options={"serverless": True}
    ),
    Case(
        "file_too_large_serverless",
        CHAT,
        jsonl(),
        "file_too_large",
        None,
        options={"serverless": True, "limit": 1000},
    ),
    # ---- chat examples ----------------------------------------------------------------------------
    Case(
        "prompt_completion_as_chat",
        CHAT,
        jsonl({"prompt": "a", "completion": "b"}, at=2),
        "missing_messages",
        2,
    ),
    Case("messages_not_list", CHAT, jsonl({"messages": "hello"}, at=3), "messages_not_list", 3),
    Case("empty_messages", CHAT, jsonl({"messages": []}, at=4), "empty_messages", 4),
    Case(
        "message_not_object",
        CHAT,
        jsonl({"messages": ["hi", assistant("ok")]}, at=5),
        "message_not_object",
        5,
    ),
    Case(
        "missing_role",
        CHAT,
        jsonl({"messages": [{"content": "hi"}, assistant("ok")]}, at=6),
        "missing_role",
        6,
        field="messages[0].role",
    ),
    Case(
        "missing_content",
        CHAT,
        jsonl({"messages": [{"role": "user"}, assistant("ok")]}, at=7),
        "missing_content",
        7,
    ),
    Case(
        "unknown_role_bot",
        CHAT,
        jsonl({"messages": [user("hi"), {"role": "bot", "content": "ok"}]}, at=8),
        "unknown_role",
        8,
        field="messages[1].role",
    ),
    Case("empty_content", CHAT, jsonl({"messages": [user(""), assistant("ok")]}, at=9), "empty_content", 9),
    Case(
        "whitespace_content",
        CHAT,
        jsonl({"messages": [user("hi"), assistant("  \n ")]}, at=10),
        "empty_content",
        10,
    ),
    Case(
        "content_list",
        CHAT,
        jsonl(
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}, assistant("ok")]},
            at=11,
        ),
        "content_not_string",
        11,
    ),
    Case(
        "content_null",
        CHAT,
        jsonl({"messages": [user("hi"), {"role": "assistant", "content": None}]}, at=12),
        "content_not_string",
        12,
    ),
    Case(
        "no_assistant",
        CHAT,
        jsonl({"messages": [user("hi"), user("anyone?")]}, at=1),
        "no_assistant_message",
        1,
    ),
    Case(
        "last_not_assistant",
        CHAT,
        jsonl({"messages": [user("hi"), assistant("hello"), user("bye")]}, at=2),
        "last_message_not_assistant",
        2,
        "warning",
    ),
    Case(
        "last_not_assistant_serverless",
        CHAT,
        jsonl({"messages": [user("hi"), assistant("hello"), user("bye")]}, at=3),
        "last_message_not_assistant",
        3,
        options={"serverless": True},
    ),
    Case(
        "weight_2",
        CHAT,
        jsonl({"messages": [user("hi"), assistant("ok", weight=2)]}, at=4),
        "invalid_weight",
        4,
        field="messages[1].weight",
    ),
    Case(
        "weight_bool",
        CHAT,
        jsonl({"messages": [user("hi"), assistant("ok", weight=True)]}, at=5),
        "invalid_weight",
        5,
    ),
    Case(
        "weight_on_user",
        CHAT,
        jsonl({"messages": [{**user("hi"), "weight": 1}, assistant("ok")]}, at=6),
        "weight_on_non_assistant",
        6,
    ),
    Case(
        "unknown_message_key",
        CHAT,
        jsonl({"messages": [user("hi"), assistant("ok", thoughts="hmm")]}, at=7),
        "unknown_message_key",
        7,
        field="messages[1].thoughts",
    ),
    Case("unknown_top_level_key", CHAT, jsonl({**chat(50), "id": 7}, at=8), "unknown_field", 8, "warning"),
    Case(
        "too_long",
        CHAT,
        jsonl(chat(77, assistant="word " * 400), at=5),
        "exceeds_max_seq_length",
        5,
        "warning",
        options={"max_seq_length": 128},
    ),
    # ---- text-completion ------------------------------------------------------------------------------
    Case(
        "completion_missing_fields",
        "text-completion",
        _insert([{"prompt": f"Q{i}", "completion": f"A{i}"} for i in range(12)], 3, {"question": "x"}),
        "missing_field",
        3,
    ),
    Case(
        "completion_empty",
        "text-completion",
        _insert(
            [{"prompt": f"Q{i}", "completion": f"A{i}"} for i in range(12)],
            4,
            {"prompt": "Q", "completion": ""},
        ),
        "empty_field",
        4,
    ),
    Case(
        "completion_wrong_type",
        "text-completion",
        _insert(
            [{"prompt": f"Q{i}", "completion": f"A{i}"} for i in range(12)],
            5,
            {"prompt": 5, "completion": "x"},
        ),
        "wrong_type",
        5,
        field="prompt",
    ),
    Case(
        "completion_ambiguous",
        "text-completion",
        _insert(
            [{"prompt": f"Q{i}", "completion": f"A{i}"} for i in range(12)],
            6,
            {"prompt": "Q", "completion": "A", "text": "T"},
        ),
        "ambiguous_format",
        6,
        "warning",
    ),
    # ---- text-classification ------------------------------------------------------------------------
    Case(
        "label_missing",
        "text-classification",
        _insert(_classification(), 2, {"text": "no label"}),
        "missing_label",
        2,
    ),
    Case(
        "label_list",
        "text-classification",
        _insert(_classification(), 3, {"text": "x", "label": ["a", "b"]}),
        "invalid_label",
        3,
    ),
    Case(
        "label_seen_once",
        "text-classification",
        _insert(_classification(), 4, {"text": "x", "label": "neutral"}),
        "rare_label",
        4,
        "warning",
    ),
    Case(
        "one_class_only",
        "text-classification",
        rows(*[{"text": f"t{i}", "label": "pos"} for i in range(12)]),
        "too_few_labels",
        None,
    ),
    Case(
        "mixed_label_types",
        "text-classification",
        rows(*[{"text": f"t{i}", "label": [1, "1", 0, "0"][i % 4]} for i in range(12)]),
        "mixed_label_types",
        None,
        "warning",
    ),
    Case(
        "one_class_as_number_and_string",
        "text-classification",
        rows(*[{"text": f"t{i}", "label": [1, "1", 1.0][i % 3]} for i in range(12)]),
        "too_few_labels",
        None,
    ),
    Case(
        "csv_missing_label_column",
        "text-classification",
        b"text,category\n" + b"".join(b"sample %d,pos\n" % i for i in range(12)),
        "missing_column",
        1,
        name="data.csv",
    ),
    Case(
        "csv_wrong_field_count",
        "text-classification",
        b"text,label\n" + b"".join(b"sample %d,pos\n" % i for i in range(4)) + b"a,b,c\n" + b"z,neg\n" * 8,
        "wrong_field_count",
        6,
        name="data.csv",
    ),
    Case(
        "csv_invalid_utf8",
        "text-classification",
        b"text,label\n"
        + b"".join(b"sample %d,pos\n" % i for i in range(5))
        + b"caf\xe9,neg\n"
        + b"x,neg\n" * 6,
        "invalid_utf8",
        7,
        name="data.csv",
        byte_offset=len(b"text,label\n" + b"".join(b"sample %d,pos\n" % i for i in range(5))) + 3,
    ),
    Case(
        "csv_multiline_then_empty_text",
        "text-classification",
        b'text,label\n"first line\nsecond line",pos\n'
        + b"ok %d,neg\n" * 0
        + b",neg\n"
        + b"t,pos\nu,neg\n" * 5,
        "empty_field",
        4,
        name="data.csv",
    ),
    Case(
        "tsv_sentence_pair_missing_pair",
        "text-classification",
        b"sentence1\tsentence2\tlabel\n" + b"a\tb\t1\n" * 3 + b"a\t\t0\n" + b"c\td\t0\n" * 8,
        "empty_field",
        5,
        name="data.tsv",
        field="sentence2",
    ),
    # ---- token-classification -----------------------------------------------------------------------
    Case(
        "tags_length_mismatch",
        "token-classification",
        _insert(_tokens(), 3, {"tokens": ["a", "b"], "ner_tags": ["O"]}),
        "length_mismatch",
        3,
    ),
    Case(
        "tokens_not_list",
        "token-classification",
        _insert(_tokens(), 4, {"tokens": "EU rejects", "ner_tags": ["B-ORG", "O"]}),
        "wrong_type",
        4,
    ),
    Case(
        "only_one_tag",
        "token-classification",
        rows(*[{"tokens": ["a", f"b{i}"], "ner_tags": ["O", "O"]} for i in range(12)]),
        "too_few_labels",
        None,
    ),
    Case(
        "tag_is_object",
        "token-classification",
        _insert(_tokens(), 5, {"tokens": ["a"], "ner_tags": [{"tag": "O"}]}),
        "invalid_tag",
        5,
    ),
    Case(
        "csv_tokens_not_json",
        "token-classification",
        b"tokens,ner_tags\n"
        + b'"[""a"",""b""]","[""B-X"",""O""]"\n' * 3
        + b'a b,"[""O"",""O""]"\n'
        + b'"[""c""]","[""O""]"\n' * 8,
        "wrong_type",
        5,
        name="data.csv",
    ),
    # ---- question-answering -------------------------------------------------------------------------
    Case(
        "answer_start_off",
        "question-answering",
        _insert(
            _qa(),
            2,
            {
                "context": "Paris is in France.",
                "question": "Where?",
                "answers": {"text": ["France"], "answer_start": [3]},
            },
        ),
        "answer_mismatch",
        2,
    ),
    Case(
        "answer_start_negative",
        "question-answering",
        _insert(
            _qa(), 3, {"context": "abc", "question": "q?", "answers": {"text": ["a"], "answer_start": [-1]}}
        ),
        "invalid_answer_start",
        3,
    ),
    Case(
        # Beyond 64 bits: orjson would read a float (invalid_answer_start); JSON has integers (the contract's).
        "answer_start_beyond_64_bits",
        "question-answering",
        _insert(
            _qa(),
            7,
            {"context": "abc", "question": "q?", "answers": {"text": ["a"], "answer_start": [2**64 + 1]}},
        ),
        "answer_mismatch",
        7,
    ),
    Case(
        "answers_length_mismatch",
        "question-answering",
        _insert(
            _qa(),
            4,
            {"context": "abc", "question": "q?", "answers": {"text": ["a", "b"], "answer_start": [0]}},
        ),
        "length_mismatch",
        4,
    ),
    Case(
        "question_missing",
        "question-answering",
        _insert(_qa(), 5, {"context": "abc", "answers": {"text": ["a"], "answer_start": [0]}}),
        "missing_field",
        5,
        field="question",
    ),
    Case(
        "answers_not_object",
        "question-answering",
        _insert(_qa(), 6, {"context": "abc", "question": "q?", "answers": "a"}),
        "wrong_type",
        6,
    ),
    # ---- summarization / translation ----------------------------------------------------------------
    Case(
        "summary_missing",
        "summarization",
        _insert(_summ(), 3, {"document": "A document without a summary."}),
        "missing_field",
        3,
        field="summary",
    ),
    Case(
        "document_empty",
        "summarization",
        _insert(_summ(), 4, {"document": " ", "summary": "x"}),
        "empty_field",
        4,
    ),
    Case(
        "language_code_invalid",
        "translation",
        _insert(
            _trans(), 5, {"source": "hi", "target": "hallo", "source_lang": "english", "target_lang": "de"}
        ),
        "invalid_language_code",
        5,
    ),
    Case(
        "wmt_missing_target_language",
        "translation",
        _insert(
            [{"translation": {"en": f"hi {i}", "ro": f"salut {i}"}} for i in range(12)],
            6,
            {"translation": {"en": "x"}},
        ),
        "missing_field",
        6,
        field="ro",
    ),
    Case(
        "columns_language_code_invalid",
        "translation",
        rows(*[{"en": f"hi {i}", "de": f"hallo {i}"} for i in range(12)]),
        "invalid_language_code",
        None,
        options={"columns": {"source_lang": "English", "target_lang": "de"}},
    ),
    Case(
        "same_language",
        "translation",
        rows(*[{"source": f"hi {i}", "target": f"hey {i}"} for i in range(12)]),
        "same_language",
        None,
        "warning",
        options={"columns": {"source_lang": "en", "target_lang": "en"}},
    ),
    # ---- preference pairs (method.objective dpo, orpo) ----------------------------------------------
    Case(
        "pair_identical_answers",
        PREF,
        _insert(_pairs(), 4, {**pair(3), "rejected": pair(3)["chosen"]}),
        "identical_answers",
        4,
        field="rejected",
    ),
    Case(
        "text_pair_identical_answers",
        PREF,
        _insert(_pairs(text_pair), 6, {"prompt": "Q", "chosen": "same", "rejected": " same "}),
        "identical_answers",
        6,
    ),
    Case(
        "pair_rejected_missing",
        PREF,
        _insert(_pairs(), 2, {"prompt": [user("hi")], "chosen": [assistant("hello")]}),
        "missing_field",
        2,
        field="rejected",
    ),
    Case(
        "pair_answer_from_user",
        PREF,
        _insert(_pairs(), 5, {**pair(5), "chosen": [user("5")]}),
        "answer_not_assistant",
        5,
        field="chosen[0].role",
    ),
    Case(
        "pair_prompt_ends_with_assistant",
        PREF,
        _insert(_pairs(), 3, {**pair(1), "prompt": [user("hi"), assistant("hello")]}),
        "prompt_ends_with_assistant",
        3,
        field="prompt[1].role",
    ),
    Case(
        "pair_mixed_shapes",
        PREF,
        _insert(_pairs(), 7, {**pair(7), "chosen": "14."}),
        "mixed_shapes",
        7,
    ),
    Case(
        "pair_unknown_role",
        PREF,
        _insert(_pairs(), 8, {**pair(8), "prompt": [{"role": "human", "content": "hi"}]}),
        "unknown_role",
        8,
        field="prompt[0].role",
    ),
    Case(
        "pair_empty_content",
        PREF,
        _insert(_pairs(), 9, {**pair(9), "rejected": [assistant("  ")]}),
        "empty_content",
        9,
        field="rejected[0].content",
    ),
    Case(
        "conversations_prompt_mismatch",
        PREF,
        _insert(
            _pairs(conversation_pair),
            5,
            {**conversation_pair(4), "rejected": [user("What is 5 + 5?"), assistant("10.")]},
        ),
        "prompt_mismatch",
        5,
        field="rejected[0]",
    ),
    Case(
        "conversations_last_message_not_assistant",
        PREF,
        _insert(
            _pairs(conversation_pair),
            10,
            {**conversation_pair(9), "chosen": [*conversation_pair(9)["chosen"], user("and?")]},
        ),
        "last_message_not_assistant",
        10,
        field="chosen[3].role",
    ),
    Case(
        "conversations_without_a_prompt",
        PREF,
        _insert(_pairs(conversation_pair), 2, {"chosen": [assistant("a")], "rejected": [assistant("b")]}),
        "missing_prompt",
        2,
    ),
    Case(
        "text_pairs_need_a_prompt",
        PREF,
        rows(*[{"chosen": f"a{i}", "rejected": f"b{i}"} for i in range(12)]),
        "missing_field",
        1,
        field="prompt",
    ),
    Case(
        "foundry_layout_input_without_messages",
        PREF,
        _insert(
            [
                {
                    "input": {"messages": p["prompt"]},
                    "preferred_output": p["chosen"],
                    "non_preferred_output": p["rejected"],
                }
                for p in _pairs()
            ],
            3,
            {
                "input": {"tools": []},
                "preferred_output": [assistant("a")],
                "non_preferred_output": [assistant("b")],
            },
        ),
        "missing_field",
        3,
        field="input.messages",
    ),
    Case(
        "csv_pair_missing_rejected_column",
        PREF,
        b"prompt,chosen\n" + b"".join(b"q%d,a%d\n" % (i, i) for i in range(12)),
        "missing_column",
        1,
        name="data.csv",
    ),
    # ---- the rules one reader decides for both sides (issue 14) -----------------------------------
    Case(
        "first_message_from_assistant",
        CHAT,
        jsonl({"messages": [assistant("Hi, how can I help?"), user("hi"), assistant("hello")]}, at=3),
        "first_message_from_assistant",
        3,
        field="messages[0].role",
    ),
    Case(
        "lone_surrogate",
        CHAT,
        jsonl(
            b'{"messages": [{"role": "user", "content": "a\\ud800b"}, {"role": "assistant", "content": "ok"}]}',
            at=4,
        ),
        "lone_surrogate",
        4,
    ),
    Case(
        "nan_is_not_json",
        "text-classification",
        _insert(_classification(), 5, b'{"text": "x", "label": NaN}'),
        "invalid_json",
        5,
    ),
    Case(
        "deeply_nested",
        "text-classification",
        _insert(
            _classification(), 2, b'{"text": "x", "label": "pos", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        ),
        "invalid_json",
        2,
    ),
    Case(
        "completion_mixed_shapes",
        "text-completion",
        _insert([{"prompt": f"Q{i}", "completion": f"A{i}"} for i in range(12)], 7, {"text": "plain text"}),
        "mixed_shapes",
        7,
    ),
    Case(
        "completion_text_file_with_a_pair",
        "text-completion",
        _insert([{"text": f"T{i}"} for i in range(12)], 2, {"prompt": "Q", "completion": "A"}),
        "mixed_shapes",
        2,
    ),
    Case(
        "utf16_file",
        CHAT,
        "\ufeff".encode("utf-16-le") + jsonl().decode().encode("utf-16-le"),
        "unsupported_encoding",
        1,
    ),
    Case(
        "json_array_element_not_object",
        CHAT,
        b"[\n"
        + b",\n".join(
            [dumps(chat(i)) for i in range(5)] + [b'"text"'] + [dumps(chat(i)) for i in range(5, 12)]
        )
        + b"\n]\n",
        "not_an_object",
        7,
        name="data.json",
    ),
    Case(
        "json_array_missing_comma",
        CHAT,
        b"[\n" + b",\n".join(dumps(chat(i)) for i in range(4)) + b"\n" + dumps(chat(9)) + b"\n]\n",
        "invalid_json",
        6,
        name="data.json",
    ),
    Case(
        "json_array_bad_example",
        "text-classification",
        json.dumps([*_classification(), {"text": "x"}], indent=2).encode(),
        "missing_label",
        2 + 4 * 12,
        name="data.json",
    ),
]


def _with_separators(i: int) -> dict[str, Any]:
    # Legal inside a JSON string; str.splitlines() would cut the line at each of them.
    text = f"one\u2028two\u2029three\x85four\x0bfive\x0csix\x1cseven {i}"
    return chat(i, assistant=text)


@dataclass
class Clean:
    """A file every reader must accept: no errors, `examples` examples."""

    id: str
    task: str
    content: bytes
    examples: int
    name: str = "data.jsonl"
    columns: dict[str, str] | None = None


def _parquet(table: dict[str, list[Any]]) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table(table), out)
    return out.getvalue()


def clean_files() -> list[Clean]:
    """The files the job used to refuse after `data validate` had passed them (Parquet needs pyarrow)."""
    files = [
        Clean("unicode_line_separators", CHAT, rows(*[_with_separators(i) for i in range(12)]), 12),
        Clean("preference_pairs", PREF, rows(*_pairs()), 12),
        Clean("preference_text_pairs", PREF, rows(*_pairs(text_pair)), 12),
        Clean("preference_conversations", PREF, rows(*_pairs(conversation_pair)), 12),
        Clean(
            "preference_foundry_layout",
            PREF,
            rows(
                *[
                    {
                        "input": {"messages": p["prompt"], "tools": [], "parallel_tool_calls": True},
                        "preferred_output": p["chosen"],
                        "non_preferred_output": p["rejected"],
                    }
                    for p in _pairs()
                ]
            ),
            12,
        ),
        Clean(
            "preference_csv_text_pairs",
            PREF,
            b"prompt,chosen,rejected\n" + b"".join(b"q%d,a%d,b%d\n" % (i, i, i) for i in range(12)),
            12,
            name="data.csv",
        ),
        Clean(
            "preference_columns_renamed",
            PREF,
            rows(*[{"question": f"q{i}", "good": f"a{i}", "bad": f"b{i}"} for i in range(12)]),
            12,
            columns={"prompt": "question", "chosen": "good", "rejected": "bad"},
        ),
        Clean("ndjson_suffix", CHAT, rows(*[chat(i) for i in range(12)]), 12, name="data.ndjson"),
        Clean(
            "json_array",
            CHAT,
            json.dumps([chat(i) for i in range(12)], indent=2).encode(),
            12,
            name="data.json",
        ),
        Clean(
            "json_lines_in_a_json_file", CHAT, BOM + rows(*[chat(i) for i in range(12)]), 12, name="data.json"
        ),
        Clean(
            "csv_with_bom_and_crlf",
            "text-classification",
            BOM
            + b"text,label\r\n"
            + b"".join(b"sample %d,%s\r\n" % (i, [b"pos", b"neg"][i % 2]) for i in range(12)),
            12,
            name="data.csv",
        ),
        Clean(
            "tsv",
            "text-classification",
            b"sentence1\tsentence2\tlabel\n"
            + b"".join(b"a %d\tb %d\t%d\n" % (i, i, i % 2) for i in range(12)),
            12,
            name="data.tsv",
        ),
        Clean(
            "tab_suffix_token_classification",
            "token-classification",
            b"tokens\tner_tags\n" + b"".join(b'["EU", "x%d"]\t["B-ORG", "O"]\n' % i for i in range(12)),
            12,
            name="data.tab",
        ),
        Clean(
            "csv_quoted_fields",
            "text-completion",
            b"prompt,completion\n"
            + b"".join(f'"say ""hi"", {i}","line one\nline two\u2028"\n'.encode() for i in range(12)),
            12,
            name="data.csv",
        ),
        Clean(
            "completion_columns_detected",
            "text-completion",
            rows(*[{"question": f"Q{i}", "answer": f"A{i}"} for i in range(12)]),
            12,
            columns={"prompt": "question", "completion": "answer"},
        ),
        Clean(
            "classification_sentence_columns",
            "text-classification",
            rows(*[{"sentence": f"s{i}", "labels": ["a", "b"][i % 2]} for i in range(12)]),
            12,
        ),
        Clean(
            "summarization_article",
            "summarization",
            rows(*[{"article": f"Long {i}.", "highlights": f"S{i}"} for i in range(12)]),
            12,
        ),
        Clean(
            "translation_wmt",
            "translation",
            rows(*[{"translation": {"en": f"hi {i}", "ro": f"salut {i}"}} for i in range(12)]),
            12,
        ),
        Clean(
            "system_then_assistant",
            CHAT,
            rows(
                *[
                    {"messages": [{"role": "system", "content": "Greet."}, assistant(f"Hello {i}")]}
                    for i in range(12)
                ]
            ),
            12,
        ),
    ]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return files
    files += [
        Clean(
            "pq_suffix",
            "text-classification",
            _parquet({"text": [f"t{i}" for i in range(12)], "label": [i % 2 for i in range(12)]}),
            12,
            name="data.pq",
        ),
        Clean(
            "parquet_qa",
            "question-answering",
            _parquet(
                {
                    "context": [f"The answer {i} is here." for i in range(12)],
                    "question": [f"Where is {i}?" for i in range(12)],
                    "answers": [
                        {"text": ["here"], "answer_start": [len(f"The answer {i} is ")]} for i in range(12)
                    ],
                }
            ),
            12,
            name="data.parquet",
        ),
    ]
    return files
