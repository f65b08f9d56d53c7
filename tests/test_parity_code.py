"""Parity of the CodeXGLUE code metrics with the official evaluators, on fixed inputs.

Every expected number was produced once by the official scripts of microsoft/CodeXGLUE at commit
ac74a62802a0dd159b3258c78a2df8ad36cdf2b9 (run unchanged on files holding these inputs, outside the project).
"""

from __future__ import annotations

import json

import pytest

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.metrics import load_metric

from conftest import SHARED_DATA

TOLERANCE = 0.01  # points; the scripts print BLEU and accuracy rounded to 2 decimals

BUGS2FIX_BUGGY = [
    ('private TYPE_1 getType ( TYPE_2 VAR_1 ) { TYPE_3 VAR_2 = new TYPE_3 ( STRING_1 ) ; return new '
     'TYPE_1 ( VAR_2 , VAR_2 ) ; }'),
    ('public TYPE_1 METHOD_1 ( ) { TYPE_1 output = VAR_1 [ VAR_2 ] ; if ( ( VAR_2 ) > 0 ) { VAR_2 = ( '
     'VAR_2 ) - 1 ; } else { } return output ; }'),
    ('private void METHOD_1 ( java.lang.Class VAR_1 ) { android.content.Intent intent = new '
     'android.content.Intent ( this , VAR_1 ) ; METHOD_2 ( intent ) ; }'),
    ('public void METHOD_1 ( ) { for ( TYPE_1 VAR_1 : VAR_2 ) VAR_1 . METHOD_2 ( ) ; METHOD_3 ( ) ; '
     'if ( ( VAR_3 ) != null ) VAR_3 . METHOD_1 ( ) ; }'),
    ('public void METHOD_1 ( ) { TYPE_1 . METHOD_2 ( METHOD_3 ( ) , METHOD_4 ( ) . getString ( VAR_1 '
     ') , VAR_2 ) . show ( ) ; }'),
]
BUGS2FIX_FIXED = [
    ('private TYPE_1 getType ( TYPE_2 VAR_1 ) { TYPE_3 VAR_2 = new TYPE_3 ( STRING_1 ) ; return new '
     'TYPE_1 ( VAR_2 , VAR_2 , this , VAR_1 ) ; }'),
    ('public TYPE_1 METHOD_1 ( ) { TYPE_1 output = VAR_1 [ VAR_2 ] ; if ( ( VAR_2 ) >= 0 ) { VAR_2 = '
     '( VAR_2 ) - 1 ; } else { } return output ; }'),
    ('public void METHOD_1 ( java.lang.Class VAR_1 ) { android.content.Intent intent = new '
     'android.content.Intent ( this , VAR_1 ) ; METHOD_2 ( intent ) ; }'),
    ('public void METHOD_1 ( ) { METHOD_3 ( ) ; if ( ( VAR_3 ) != null ) VAR_3 . METHOD_1 ( VAR_2 ) ; '
     '}'),
    ('private void METHOD_1 ( ) { TYPE_1 . METHOD_2 ( METHOD_3 ( ) , METHOD_4 ( ) . getString ( VAR_1 '
     ') , VAR_2 ) . show ( ) ; }'),
]

# (predictions, references, official BLEU): evaluator/bleu.py `_bleu` (the rows with several references:
# its `compute_bleu(refs, hyps, 4, smooth=True)`, the wrapper reading one reference file), printed rounded to 2.
TOKEN_BLEU = [
    (['public int getY'], ['public int getX ( ) { return x ; }'], 6.86),
    (['public int getX ( ) { return x ; }'], ['public int getX ( ) { return x ; }'], 100.0),
    (['public int getX ( ) { return x ; } public int getX ( ) { return x ; }'],
     ['public int getX ( ) { return x ; }'],
     48.46),
    (['x x x x x x x x'], ['x y x z x'], 19.07),
    (['Public Int GetX ( ) { Return X ; }'], ['public int getX ( ) { return x ; }'], 27.9),
    (['  public  int\tgetX (  ) {   return x ; }  '], ['public int getX ( ) { return x ; }'], 100.0),
    (['return'], ['return x ;'], 13.53),
    (['return x'], ['return x ;'], 60.65),
    (['foo bar baz qux'], ['alpha beta gamma delta'], 30.21),
    (['public void run ( ) { }', ''], ['public void run ( ) { }', 'int x = 0 ;'], 48.95),
    (BUGS2FIX_BUGGY, BUGS2FIX_FIXED, 85.78),  # the first five Bugs2Fix (small) test rows
    (['int a = b + c ;'], ['int a = b + c + d ;'], 65.34),
    (['int a = b + c + d ;'], ['int a = c + b + d ;'], 45.18),
    (['if ( x != null ) { x . close ( ) ; }'], ['if ( ( x ) != null ) { x . close ( ) ; }'], 74.16),
    (['public string GetName ( ) { return name ; }'], ['public string GetName ( ) { return this . name ; }'], 66.59),
    (['String s = "héllo" ;'], ['String s = "héllo wörld" ;'], 43.99),
    (['int VAR_1 = METHOD_1 ( VAR_2 ) ;', 'return VAR_1 ;', '{ }'],
     ['int VAR_1 = METHOD_2 ( VAR_2 ) ;', 'return VAR_1 ;', '{ }'],
     63.07),
    (['a b c d e f g h'], ['a b c d'], 44.63),
    (['a b'], ['a b c d e f g h i j'], 1.83),
    (['; ; ; ;'], ['; ; ; ; ;'], 77.88),
    (['x', 'y', 'z'], ['x', 'y', 'z'], 100.0),
    (['return true ;', 'return false ;'], ['return false ;', 'return true ;'], 46.71),
    (['return x ;'], [['return x ;', 'return y ;']], 100.0),
    (['int a = b ;'], [['int a = c ;', 'int a = b + 1 ;']], 79.53),
    (['public void f ( ) { }'], [['void f ( ) { }', 'public void f ( ) { return ; }']], 100.0),
    (['x = 1 ;', 'y = 2 ;'], [['x = 1 ;'], ['y = 3 ;', 'y = 2 ; z = 4 ;']], 100.0),
]
# (predictions, references, official smoothed BLEU): Code-Text/code-to-text/evaluator/evaluator.py on a gold file
# of "id<TAB>reference" lines (one line per reference) and "id<TAB>prediction" on stdin; rounded to 4 here.
SMOOTHED_BLEU = [
    (['the downloaded archive into project_dir .'],
     ['Extracts the downloaded archive file into project_dir .'],
     59.8691),
    (['Returns the value .'], ['Returns the value .'], 100.0),
    (['get user name'], ['get_user_name'], 38.7539),
    (['getUserName'], ['get user name'], 0.0),
    (['getUserName'], ['getUserName'], 100.0),
    (['RETURNS THE Value'], ['returns the value'], 100.0),
    (['Returns the value.'], ['returns the value .'], 100.0),
    ([''], ['Returns the value .'], 1.8316),
    (['Returns the value of the field of the object of the class .'], ['Returns the value .'], 18.1108),
    (['the the the the the the'], ['the cat sat on the mat'], 22.9575),
    (["Returns the user's name"], ["Returns the user ' s name"], 100.0),
    (["don't stop"], ["do n't stop"], 53.8755),
    (['version 1.5 or 2,000'], ['version 1 . 5 or 2 , 000'], 100.0),
    (['foo &amp; bar &quot;baz&quot;'], ['foo & bar "baz"'], 14.9911),
    (['end-of-line hyphen'], ['end - of - line hyphen'], 100.0),
    (['<skipped> this'], ['skipped this'], 37.9918),
    (['Returns   the    value'], ['Returns the value'], 100.0),
    (['café naïve Straße'], ['cafe naive strasse'], 0.0),
    (['Returns'], ['Returns the value'], 36.7879),
    (['anything here'], [''], 0.0),
    ([''], [''], 100.0),
    (['__init__ the object'], ['init the object'], 25.276),
    (['Call `foo.bar()` with {x: 1} [a] @param'], ['call foo . bar ( ) with { x : 1 } [ a ] @ param'], 75.7987),
    (['a/b\\c|d~e^f*g+h=i<j>k#l$m%n!o?p'], ['a / b \\ c | d ~ e ^ f * g + h = i < j > k # l $ m % n ! o ? p'], 100.0),
    (['Sets the value', 'Gets the value', 'Deletes the file'],
     ['Sets the value .', 'Returns the value', 'Removes a file from disk'],
     58.6618),
    (['Returns the value'], [['Gets the value', 'Returns a value', 'Returns the value']], 100.0),
    (['Returns the value', 'Opens it'],
     [['Gets the value', 'Returns some value'], ['Opens the file', 'closes it']],
     80.0366),
]
# (predictions, references, string exact match, token exact match): "Acc" of Code-Code/code-refinement (and,
# identically, Code-Code/code-to-code-trans) evaluator/evaluator.py, "EM" of Text-Code/text-to-code/evaluator/
# evaluator.py (answers as {"code": reference} JSON lines). Both round to 2. Rows with an empty string carry a
# second, non-empty row: the scripts' BLEU divides by zero on an all-empty file before printing the accuracy.
EXACT = [
    (['a  b'], ['a b'], 0.0, 100.0),
    (['a b'], ['a b'], 100.0, 100.0),
    (['  a b  '], ['a b'], 100.0, 100.0),
    (['a\tb'], ['a b'], 0.0, 100.0),
    (['A b'], ['a b'], 0.0, 0.0),
    (['', 'x'], ['', 'x'], 100.0, 100.0),
    (['', 'x'], ['a', 'x'], 50.0, 50.0),
    (['a b ;'], ['a b'], 0.0, 0.0),
    (['a b\t'], ['a b'], 100.0, 100.0),
    (['public int getX ( ) { return x ; }'], ['public int getX ( ) { return x ; }'], 100.0, 100.0),
    (['public int getX ( ) {return x ; }'], ['public int getX ( ) { return x ; }'], 0.0, 0.0),
    (['public int getX() { return x; }'], ['public int getX ( ) { return x ; }'], 0.0, 0.0),
    (['String s = "a  b" ;'], ['String s = "a b" ;'], 0.0, 100.0),
    (['héllo'], ['hello'], 0.0, 0.0),
    (['x\xa0y'], ['x y'], 0.0, 100.0),
    (['a b', 'c d', 'e f'], ['a b', 'c  d', 'e g'], 33.33, 66.67),
    (['a b', 'c d', 'e f', 'g'], ['a b', 'c d', 'e f', 'h'], 75.0, 75.0),
    (['x = 1 ;', ' y = 2 ;', 'z = 3 ;'], ['x = 1 ;', 'y = 2 ;', 'z  =  3 ;'], 66.67, 100.0),
    (['return x ;'], ['return  x ;'], 0.0, 100.0),
    (['return x;'], ['return x ;'], 0.0, 0.0),
    (['int a ;', 'int b ;'], ['int a ;', 'int b ;'], 100.0, 100.0),
    (['CONCODE_FIELD_SEP x'], ['concode_field_sep x'], 0.0, 0.0),
]


def score(name: str, predictions: list[str], references: list, **options: object) -> float:
    """The metric's main value through the `evaluate` module, as the evaluation runner computes it."""
    return load_metric(name).compute(predictions=predictions, references=references, **options)[name]


@pytest.mark.parametrize(("predictions", "references", "expected"), TOKEN_BLEU)
def test_token_bleu_equals_codexglue_bleu(predictions: list[str], references: list, expected: float) -> None:
    assert score("token_bleu", predictions, references) == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.skipif(not (SHARED_DATA / "code" / "code_refinement_small").is_dir(), reason="../shared/data is absent")
def test_token_bleu_on_bugs2fix_rows() -> None:
    path = SHARED_DATA / "code" / "code_refinement_small" / "test.jsonl"
    rows = [json.loads(line) for line in path.open()]
    buggy, fixed = [r["buggy"] for r in rows], [r["fixed"] for r in rows]
    # Code-Code/code-refinement/evaluator/evaluator.py, the buggy code as the prediction: "BLEU: 79.36 ; Acc: 0.0"
    # on the first 30 rows, "BLEU: 82.21 ; Acc: 0.0" on the first 200
    assert score("token_bleu", buggy[:30], fixed[:30]) == pytest.approx(79.36, abs=TOLERANCE)
    assert score("token_bleu", buggy[:200], fixed[:200]) == pytest.approx(82.21, abs=TOLERANCE)
    assert score("code_exact_match", buggy[:200], fixed[:200]) == 0.0


def test_token_bleu_where_the_official_script_divides_by_zero() -> None:
    # no output token at all: the brevity penalty's limit, 0; no reference token at all: no brevity penalty,
    # so 100 * ((0+1)/(2+1) * (0+1)/(1+1) * 1 * 1) ** (1/4)
    assert score("token_bleu", ["", ""], ["a b", "c"]) == 0.0
    assert score("token_bleu", ["void f"], [""]) == pytest.approx(100 * (1 / 6) ** 0.25)


@pytest.mark.parametrize(("predictions", "references", "expected"), SMOOTHED_BLEU)
def test_smoothed_bleu_equals_codexglue_code_to_text(predictions: list[str], references: list,
                                                      expected: float) -> None:
    assert score("smoothed_bleu", predictions, references) == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize(("predictions", "references", "string", "tokens"), EXACT)
def test_code_exact_match_equals_codexglue(predictions: list[str], references: list[str], string: float,
                                           tokens: float) -> None:
    assert score("code_exact_match", predictions, references) == pytest.approx(string, abs=TOLERANCE)
    assert score("code_exact_match", predictions, references, compare="string") == pytest.approx(string, abs=TOLERANCE)
    assert score("code_exact_match", predictions, references, compare="tokens") == pytest.approx(tokens, abs=TOLERANCE)


def test_code_exact_match_takes_the_best_reference() -> None:
    assert score("code_exact_match", ["a b", "c"], [["a  b", "a b"], ["d", "e"]]) == 50.0


def test_code_exact_match_refuses_an_unknown_comparison() -> None:
    with pytest.raises(T2TError, match=r"compare must be one of \['string', 'tokens'\], not 'token'"):
        score("code_exact_match", ["a"], ["a"], compare="token")
