"""Phone timings, viseme timing rules, articulation on a face model, and its scores."""

import shutil

import numpy as np
import pytest
import torch

from audio2pose import phones
from audio2pose.articulation import (
    MouthShapes,
    articulate,
    articulated_exp,
    footage_shapes,
    lip_gaps,
    mouth_projection,
    open_widely,
    settle_closure,
    shrink,
    table_prior,
    temper,
)
from audio2pose.metrics import articulation_scores, mouth_aperture
from audio2pose.phones import (
    SILENCE,
    Phone,
    PhoneTimings,
    align_words,
    flite_phones,
    speech_phones,
    speech_pieces,
    transcript_words,
)
from audio2pose.tts import FliteSynthesizer, synthesize_text
from audio2pose.visemes import BILABIALS, VISEMES, VisemeConfig, phone_openness, viseme_openness, viseme_weights
from recon3d.facemodels import load_builtin

requires_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="CMU Flite is not installed")


def timings(*phones: tuple[str, float, float]) -> PhoneTimings:
    return PhoneTimings(tuple(Phone(*p) for p in phones), "synthesizer")


def test_flite_durations_become_phones_with_start_and_end():
    parsed = flite_phones("pau:0.142 b:0.215 aa:0.348 b:0.384 ax:0.45 pau:0.6")
    assert [p.label for p in parsed.phones] == [SILENCE, "B", "AA", "B", "AH", SILENCE]
    assert parsed.phones[1] == Phone("B", 0.142, 0.215) and parsed.phones[-1].end == 0.6


def test_a_bilabial_closes_the_mouth_however_short_and_ahead_of_the_sound():
    config = VisemeConfig(lead=0.06, closure_hold=2)
    # /a/ - a 20 ms /b/ (shorter than a frame) - /a/
    said = timings(("AA", 0.0, 0.5), ("B", 0.5, 0.52), ("AA", 0.52, 1.0))
    weights = viseme_weights(said, 25, 25.0, config)
    pp = weights[:, VISEMES.index("PP")]
    closed = np.nonzero(pp == 1.0)[0]
    assert len(closed) == 2  # held two frames, never one
    assert closed.mean() / 25 < 0.51  # centred before the sound: anticipation
    np.testing.assert_allclose(weights.sum(1), 1.0)
    openness = viseme_openness(weights)
    assert openness[closed].max() == 0.0 and openness[[3, 20]].min() > 0.9


def test_tongue_consonants_take_the_vowels_shape_and_weights_change_smoothly():
    said = timings(("AA", 0.0, 0.3), ("T", 0.3, 0.36), ("AA", 0.36, 0.7))
    openness = viseme_openness(viseme_weights(said, 18))
    assert openness.min() > 0.6  # the /t/ barely closes the lips
    # No flicker: a short consonant between vowels moves the mouth in one dip (down and up again,
    # wiggles under 0.01), not back and forth.
    variation = np.abs(np.diff(openness)).sum()
    assert variation < 2 * (openness.max() - openness.min()) + 0.02


def test_phone_openness_is_the_table_at_the_sound():
    said = timings(("M", 0.0, 0.2), ("AA", 0.2, 0.6))
    openness = phone_openness(said, 20)
    assert (
        openness[1] == 0.0 and openness[10] == pytest.approx(1.0) and openness[18] == 0.0
    )  # after the last phone: silence


def test_scores_reward_a_mouth_that_closes_on_bilabials():
    said = timings(("AA", 0.0, 0.4), ("B", 0.4, 0.5), ("AA", 0.5, 0.9), ("M", 0.9, 1.0), ("AA", 1.0, 1.4))
    good = phone_openness(said, 35) * 0.2 + 0.005
    scores = articulation_scores(good, said)
    assert scores["closure_rate"] == 1.0 and scores["contrast"] > 0.9
    assert scores["openness_r"] > 0.99 and scores["openness_lag"] == 0
    lazy = np.full(35, 0.1) + 0.01 * np.sin(np.arange(35))
    lazy_scores = articulation_scores(lazy, said)
    assert lazy_scores["closure_rate"] == 0.0 and lazy_scores["contrast"] < 0.1
    early = np.roll(good, -2)
    assert articulation_scores(early, said)["openness_lag"] == 2  # the mouth leads by two frames


def test_a_leading_mouth_is_not_taken_for_a_closed_one_at_the_end_of_a_short_vowel():
    # Vowels of 80 ms between bilabials: a mouth leading the sound by two frames is closing for the
    # next bilabial during each vowel's sound, which read at the sound (not at the lag) would make
    # the open mouth look half closed (contrast 0.86 against 0.95).
    said = timings(
        *[(label, 0.08 * i, 0.08 * (i + 1)) for i, label in enumerate(["M", "AA", "B", "AE", "P", "AA", "M"] * 2)]
    )
    mouth = np.roll(phone_openness(said, 28) * 0.2 + 0.004, -2)
    scores = articulation_scores(mouth, said)
    assert scores["openness_lag"] == 2 and scores["closure_rate"] == 1.0 and scores["contrast"] > 0.9


@pytest.fixture(scope="module")
def builtin():
    return load_builtin()


def test_the_mouth_projection_keeps_the_rest_of_the_face(builtin):
    projection = mouth_projection(builtin)
    np.testing.assert_allclose(projection @ projection, projection, atol=1e-4)  # a projection
    rng = np.random.default_rng(0)
    exp = rng.standard_normal((4, builtin.exp_basis.shape[2])).astype(np.float32) * builtin.exp_prior_std
    kept = exp @ (np.eye(len(projection)) - projection).T
    id = torch.zeros(builtin.id_basis.shape[2])
    moved = builtin.shape(id, torch.from_numpy(exp.astype(np.float32))) - builtin.shape(
        id, torch.from_numpy(kept.astype(np.float32))
    )
    mouth = builtin.landmark_idx[48:68]
    eyes = builtin.landmark_idx[36:48]
    # What the projection took away moved the lips far more than the eyes.
    assert moved[:, mouth].norm(dim=-1).mean() > 3 * moved[:, eyes].norm(dim=-1).mean()


def test_tempering_scales_only_the_mouth_about_the_centre(builtin):
    projection = mouth_projection(builtin)
    rng = np.random.default_rng(2)
    exp, centre = rng.standard_normal((2, 6, len(projection))).astype(np.float32)
    tempered = temper(exp, centre[0], projection, 0.5)
    rest = np.eye(len(projection)) - projection
    np.testing.assert_allclose(tempered @ rest.T, exp @ rest.T, atol=1e-5)
    np.testing.assert_allclose((tempered - centre[0]) @ projection.T, 0.5 * (exp - centre[0]) @ projection.T, atol=1e-5)
    np.testing.assert_array_equal(temper(exp, centre[0], projection, 1.0), exp)


def test_habits_add_the_networks_own_mouth_motion_about_its_mean_and_nothing_else(builtin):
    projection = mouth_projection(builtin)
    k = len(projection)
    rng = np.random.default_rng(3)
    network = rng.standard_normal((40, k)).astype(np.float32)
    said = timings(("SIL", 0.0, 0.3), ("M", 0.3, 0.4), ("AA", 0.4, 0.9), ("SIL", 0.9, 1.6))
    shapes = MouthShapes(
        np.zeros(k, np.float32),
        np.ones(k, np.float32),
        np.zeros((len(VISEMES), k), np.float32),
        9.0,
        np.zeros(len(VISEMES)),
    )
    phones_only = articulate(network, said, shapes, projection)
    hybrid = articulate(network, said, shapes, projection, habits=0.5)
    rest = np.eye(k) - projection
    np.testing.assert_allclose(hybrid @ rest.T, phones_only @ rest.T, atol=1e-5)  # the brows and eyes: the network's
    expected = 0.5 * (network - network.mean(0)) @ projection.T
    np.testing.assert_allclose(hybrid - phones_only, expected, atol=1e-5)
    # A network whose mouth never moves adds nothing.
    still = np.repeat(network[:1], 40, 0)
    np.testing.assert_allclose(
        articulate(still, said, shapes, projection, habits=0.5), articulate(still, said, shapes, projection), atol=1e-6
    )


def test_footage_shapes_articulate_on_the_face_and_are_deterministic(builtin):
    rng = np.random.default_rng(1)
    k = builtin.exp_basis.shape[2]
    # A synthetic actor who opens along one direction with the sound's openness.
    said = timings(*[(label, 0.2 * i, 0.2 * (i + 1)) for i, label in enumerate(["M", "AA", "P", "AO", "B", "AE"] * 3)])
    openness = phone_openness(said, 90)
    direction = np.zeros(k, np.float32)
    direction[0] = -2.5 * builtin.exp_prior_std  # opens the mean face
    exp = (openness[:, None] * direction + 0.01 * rng.standard_normal((90, k))).astype(np.float32)
    id = torch.zeros(builtin.id_basis.shape[2])
    aperture = mouth_aperture(builtin, id, torch.from_numpy(exp))
    own = footage_shapes(exp, aperture, said)
    assert own.extreme_count == 9 and own.counts[VISEMES.index("PP")] > 5
    again = footage_shapes(exp, aperture, said)
    np.testing.assert_array_equal(own.details, again.details)
    new = timings(("SIL", 0.0, 0.1), ("B", 0.1, 0.2), ("AA", 0.2, 0.5), ("M", 0.5, 0.6), ("AA", 0.6, 0.9))
    settled = settle_closure(
        own, builtin, id, np.zeros(k, np.float32)
    )  # as personalize does: where this face's lips meet
    driven = articulate(np.zeros((25, k), np.float32), new, settled, mouth_projection(builtin))
    scores = articulation_scores(mouth_aperture(builtin, id, torch.from_numpy(driven)), new)
    assert scores["closure_rate"] == 1.0 and scores["contrast"] > 0.6 and scores["openness_r"] > 0.6


def test_a_barely_open_mouth_is_opened_as_far_as_the_priors_and_a_wide_one_is_kept(builtin):
    k = builtin.exp_basis.shape[2]
    id, rest = torch.zeros(builtin.id_basis.shape[2]), np.zeros(k, np.float32)
    direction = np.zeros(k, np.float32)
    direction[0] = -2.5 * builtin.exp_prior_std  # opens the mean face
    prior = MouthShapes(rest, direction, np.zeros((len(VISEMES), k), np.float32), 100.0, np.zeros(len(VISEMES)))
    gap = lambda exp: float(lip_gaps(builtin, id, exp[None])[0])  # noqa: E731
    tight = MouthShapes(rest, 0.3 * direction, prior.details, 9.0, prior.counts)
    opened = open_widely(tight, prior, builtin, id, rest)
    assert gap(prior.open) <= gap(opened.open) < 1.1 * gap(prior.open)
    np.testing.assert_array_equal(opened.closed, tight.closed)
    wide = MouthShapes(rest, 1.5 * direction, prior.details, 9.0, prior.counts)
    np.testing.assert_array_equal(open_widely(wide, prior, builtin, id, rest).open, wide.open)
    assert open_widely(tight, None, builtin, id, rest) is tight


def test_shrinking_weighs_the_actor_by_how_often_a_shape_was_seen():
    v, k = len(VISEMES), 3
    own = MouthShapes(np.ones(k), np.ones(k) * 3, np.ones((v, k)), 10.0, np.full(v, 10.0))
    prior = MouthShapes(np.zeros(k), np.zeros(k), np.zeros((v, k)), 0.0, np.zeros(v))
    shrunk = shrink(own, prior)
    np.testing.assert_allclose(shrunk.closed, 0.5)
    np.testing.assert_allclose(shrunk.details, 0.5)
    unseen = MouthShapes(own.closed, own.open, own.details, 0.0, np.zeros(v))
    np.testing.assert_allclose(shrink(unseen, prior).open, 0.0)


def test_an_arkit_prior_closes_on_bilabials_and_opens_the_jaw_on_vowels():
    class Named:
        exp_names = (
            "jawOpen",
            "mouthLowerDown_L",
            "mouthLowerDown_R",
            "mouthUpperUp_L",
            "mouthUpperUp_R",
            "mouthPucker",
            "mouthFunnel",
        )

    prior = table_prior(Named())
    weights = np.eye(len(VISEMES))
    mouth = articulated_exp(weights, prior)
    assert mouth[VISEMES.index("PP"), 0] == 0.0 and mouth[VISEMES.index("aa"), 0] > 0.4
    assert mouth[VISEMES.index("ou"), 5] > 0.5  # rounded
    assert table_prior(load_builtin()) is None


def test_a_settled_closure_stays_in_the_blendshape_range(ict_model):
    # A closed mouth below jawOpen 0 would be clipped at generate, and openings between it and the
    # open mouth would stay clipped closed: the settled one lies in the range, its lips meeting.
    prior = table_prior(ict_model)
    k = len(prior.closed)
    axis = prior.open - prior.closed
    past = MouthShapes(prior.closed - 0.5 * axis, prior.open, prior.details, prior.extreme_count, prior.counts)
    id = torch.zeros(ict_model.id_basis.shape[2])
    settled = settle_closure(past, ict_model, id, np.zeros(k, np.float32))
    low, high = ict_model.exp_range
    assert settled.closed.min() >= low and settled.closed.max() <= high
    gaps = lip_gaps(ict_model, id, np.stack([settled.closed, prior.open]))
    assert gaps[0] < 0.3 * gaps[1]


@requires_flite
def test_alignment_finds_the_words_where_flite_said_them():
    speech = synthesize_text("Bob paid me a lot of money.", FliteSynthesizer("rms"))
    exact = speech.phones
    aligned = align_words(speech.audio, transcript_words(speech.text))
    assert aligned is not None and aligned.source == "transcript"
    assert [p.label for p in aligned.phones if p.label != SILENCE] == [
        p.label for p in exact.phones if p.label != SILENCE
    ]
    exact_bilabials = [p for p in exact.phones if p.label in BILABIALS]
    aligned_bilabials = [p for p in aligned.phones if p.label in BILABIALS]
    # Each closure within 40 ms (a video frame) of Flite's own timing.
    for a, b in zip(exact_bilabials[1:], aligned_bilabials[1:]):
        assert abs((a.start + a.end) / 2 - (b.start + b.end) / 2) < 0.04
    decoded = speech_phones(speech.audio)
    assert decoded.source in ("decoded", "phone-loop") and decoded.phones
    assert speech_phones(speech.audio, speech.text) == aligned


def test_long_speech_is_cut_into_pieces_at_its_pauses():
    rng = np.random.default_rng(0)
    bursts = [rng.standard_normal(int(16000 * s)).astype(np.float32) * 0.3 for s in (1.3, 0.9, 1.7, 1.1, 0.6)]
    pause = np.zeros(4000, np.float32)  # 250 ms
    audio = np.concatenate([part for burst in bursts for part in (burst, pause)])
    pieces = speech_pieces(audio, 2.0)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(audio) and len(pieces) > 1
    assert all(end == start for (_, end), (start, _) in zip(pieces, pieces[1:]))  # no gap, no overlap
    assert all(0 < end - start <= 32000 and start % 160 == 0 for start, end in pieces)
    for _, cut in pieces[:-1]:
        assert not audio[cut - 400 : cut + 400].any()  # cut within a pause, 25 ms from the words
    assert speech_pieces(audio, 60.0) == [(0, len(audio))]


@requires_flite
def test_long_speech_decoded_in_pieces_keeps_its_closures(monkeypatch):
    text = "Bob paid me a lot of money. My mother bought apples. Please bring the map back."
    speech = synthesize_text(text, FliteSynthesizer("rms"))  # sentences with pauses between
    monkeypatch.setattr(phones, "PIECE_SECONDS", len(speech.audio) / 16000 / 2.5)
    assert len(speech_pieces(speech.audio)) == 3
    decoded = speech_phones(speech.audio)
    assert decoded.source == "decoded"
    starts = [p.start for p in decoded.phones]
    assert starts == sorted(starts) and decoded.phones[-1].end <= len(speech.audio) / 16000 + 0.02
    found = [
        any(q.label in BILABIALS and q.start - 0.06 < p.end and p.start < q.end + 0.06 for q in decoded.phones)
        for p in speech.phones.phones
        if p.label in BILABIALS
    ]
    assert np.mean(found) >= 0.8, found
