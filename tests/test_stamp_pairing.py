"""Image <-> camera_info pairing by stamp (issue 10), as the pure class the nodes use."""
from __future__ import annotations

from depth_prior_ros.ros.stamp_pairing import NO_CAMERA_INFO, UNPAIRED, StampPairing

MS = 1_000_000
T = 1_700_000_000 * 1_000_000_000  # a realistic stamp in ns


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pairing(tolerance_s=0.01, **kw):
    clock = Clock()
    return StampPairing(tolerance_s, clock=clock, **kw), clock


def decided(outcomes):
    return [(o.image, o.info, o.reason) for o in outcomes]


def test_exact_stamp_wins_over_a_nearer_arrival_and_interleaved_cameras_pair_right():
    p, _ = pairing(tolerance_s=0.01)
    p.add_info(T, "front")
    p.add_info(T + 4 * MS, "rear")  # within the tolerance, and the latest: "latest" would pick it
    p.add_info(T + 50 * MS, "front+1")
    assert decided(p.add_image(T, "img")) == [("img", "front", None)]
    assert decided(p.add_image(T + 5 * MS, "img2")) == [("img2", "rear", None)]  # nearest within tolerance
    assert decided(p.add_image(T + 50 * MS, "img3")) == [("img3", "front+1", None)]


def test_an_image_waits_for_a_camera_info_that_comes_after_it():
    p, _ = pairing()
    p.add_info(T, "a")
    assert p.add_image(T + 100 * MS, "img") == [] and p.waiting == 1
    assert decided(p.add_info(T + 100 * MS, "b")) == [("img", "b", None)]
    assert p.waiting == 0


def test_waiting_images_give_way_to_newer_ones_and_time_out():
    p, clock = pairing(hold=2, max_wait_s=0.5)
    p.add_info(T, "a")
    assert p.add_image(T + 100 * MS, 1) == [] and p.add_image(T + 200 * MS, 2) == []
    out = p.add_image(T + 300 * MS, 3)  # a third one pushes the oldest out
    assert [(o.image, o.reason) for o in out] == [(1, UNPAIRED)]
    assert "camera_info_tolerance 0.01 s" in out[0].message and "nearest is 0.1 s away" in out[0].message
    # A newer image that pairs gives up the older waiting ones: frames stay in stamp order.
    out = p.add_info(T + 300 * MS, "c")
    assert decided(out) == [(2, None, UNPAIRED), (3, "c", None)]
    p.add_image(T + 400 * MS, 4)
    clock.now = 0.6
    assert [(o.image, o.reason) for o in p.expire()] == [(4, UNPAIRED)]
    assert p.waiting == 0 and p.last_gap_ns == 100 * MS


def test_before_any_camera_info_the_reason_is_no_camera_info():
    p, clock = pairing(max_wait_s=0.2)
    assert p.add_image(T, "img") == []
    clock.now = 1.0
    out = p.expire()
    assert [(o.image, o.reason, o.message) for o in out] == [("img", NO_CAMERA_INFO, "no camera_info received yet")]


def test_a_camera_info_stamped_zero_pairs_with_any_image_unless_a_stamped_one_matches():
    p, _ = pairing()
    p.add_info(0, "static")
    assert decided(p.add_image(T, "img")) == [("img", "static", None)]
    p.add_info(T + 100 * MS, "stamped")
    assert decided(p.add_image(T + 100 * MS, "img2")) == [("img2", "stamped", None)]
    assert decided(p.add_image(T + 500 * MS, "img3")) == [("img3", "static", None)]


def test_zero_tolerance_is_exact_only_and_the_buffer_is_bounded():
    p, _ = pairing(tolerance_s=0.0, capacity=3)
    for k in range(5):
        p.add_info(T + k * MS, k)
    assert decided(p.add_image(T + 4 * MS, "x")) == [("x", 4, None)]
    assert p.add_image(T + 1 * MS, "old") == []  # pushed out of the 3-deep buffer
    assert p.add_image(T + 2 * MS + 1, "off") == []  # 1 ns off: no pairing with tolerance 0


def test_drain_gives_up_every_waiting_image():
    p, _ = pairing()
    p.add_image(T, 1)
    p.add_image(T + MS * 100, 2)
    assert [(o.image, o.reason) for o in p.drain("shutdown", "closed")] == [(1, "shutdown"), (2, "shutdown")]
    assert p.waiting == 0 and p.drain("shutdown", "closed") == []
