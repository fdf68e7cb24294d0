import pytest
import torch

from umeta.data import ImageSet
from umeta.errors import UmetaError
from umeta.tasks import EpisodeSampler


def test_episode_shapes_and_labels(tiny_images):
    sampler = EpisodeSampler(tiny_images, n_way=5, k_shot=2, q_query=3, seed=0)
    ep = sampler.sample(4)
    assert ep.support_x.shape == (4, 10, 1, 16, 16)
    assert ep.query_x.shape == (4, 15, 1, 16, 16)
    assert ep.support_x.dtype == torch.float32 and ep.support_x.max() <= 1.0
    assert ep.support_y.tolist()[0] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_support_and_query_are_distinct_images_of_the_right_class(tiny_images):
    sampler = EpisodeSampler(tiny_images, n_way=5, k_shot=2, q_query=3, seed=1)
    support, query = sampler.sample_indices(16)
    labels = tiny_images.labels
    for t in range(16):
        both = torch.cat([support[t], query[t]])
        assert len(set(both.tolist())) == len(both)  # no image drawn twice in a task
        classes = labels[support[t]].view(5, 2)
        assert (classes == classes[:, :1]).all()  # each way holds one class
        assert len(set(classes[:, 0].tolist())) == 5
        assert (labels[query[t]].view(5, 3) == classes[:, :1]).all()


def test_same_seed_same_episodes(tiny_images):
    a = EpisodeSampler(tiny_images, 5, 1, 2, seed=7).sample_indices(8)
    b = EpisodeSampler(tiny_images, 5, 1, 2, seed=7).sample_indices(8)
    c = EpisodeSampler(tiny_images, 5, 1, 2, seed=8).sample_indices(8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_every_class_and_image_gets_drawn(tiny_images):
    support, _ = EpisodeSampler(tiny_images, 5, 1, 1, seed=0).sample_indices(2000)
    assert set(tiny_images.labels[support].unique().tolist()) == set(range(12))
    assert len(support.unique()) == len(tiny_images)


def test_too_many_ways_is_a_clear_error(tiny_images):
    with pytest.raises(UmetaError, match="n_way=13 is larger than the 12 classes"):
        EpisodeSampler(tiny_images, 13, 1, 1)


def test_class_with_too_few_images_is_named(tiny_images):
    keep = torch.ones(len(tiny_images), dtype=torch.bool)
    keep[:5] = False  # class c00 keeps 3 images
    small = ImageSet(tiny_images.images[keep], tiny_images.labels[keep],
                     tiny_images.class_names, None, "small")
    with pytest.raises(UmetaError, match=r"class 'c00' of 'small' has 3 images but k_shot \+ q_query"):
        EpisodeSampler(small, 5, 2, 2)


def test_tasks_without_queries(tiny_images):
    support, query = EpisodeSampler(tiny_images, 3, 8, 0, seed=0).sample_indices(5)
    assert support.shape == (5, 24) and query.shape == (5, 0)
    assert all(len(set(row.tolist())) == 24 for row in support)


def test_clustering_tasks_are_shuffled_and_consistent(tiny_images):
    from umeta.tasks import sample_clustering_tasks

    tasks = sample_clustering_tasks(tiny_images, 3, 8, 4, seed=0)
    assert tasks.images.shape == (4, 24, 1, 16, 16)
    labels = torch.as_tensor(tasks.labels)
    assert torch.equal(labels, tiny_images.labels[tasks.index])
    for t in range(4):
        # the task-local ways name the same partition as the true classes
        pairs = set(zip(tasks.ways[t].tolist(), labels[t].tolist()))
        assert len(pairs) == 3 and sorted(w for w, _ in pairs) == [0, 1, 2]
        assert labels[t].tolist() != sorted(labels[t].tolist())  # not class-major
    again = sample_clustering_tasks(tiny_images, 3, 8, 4, seed=0)
    assert torch.equal(again.index, tasks.index)


def test_augmented_episodes_are_the_plain_ones_augmented_with_the_samplers_generator(tiny_images):
    from umeta.tasks.augment import Augment

    aug = Augment(shift=2, dropout=0.1)
    plain = EpisodeSampler(tiny_images, 4, 2, 3, seed=5)
    augmented = EpisodeSampler(tiny_images, 4, 2, 3, seed=5, augment={"shift": 2, "dropout": 0.1})
    support, query = plain.sample_indices(3)  # the same draws the augmented sampler makes first
    ep = augmented.sample(3)
    gen = plain.generator  # now in the state the augmented sampler augments from
    want_s = aug(tiny_images.float_images(support).flatten(0, 1), gen).view(ep.support_x.shape)
    want_q = aug(tiny_images.float_images(query).flatten(0, 1), gen).view(ep.query_x.shape)
    assert torch.equal(ep.support_x, want_s) and torch.equal(ep.query_x, want_q)
    assert not torch.equal(ep.support_x, tiny_images.float_images(support))
    again = EpisodeSampler(tiny_images, 4, 2, 3, seed=5, augment=aug).sample(3)
    assert torch.equal(again.query_x, ep.query_x)  # seeded


def test_unknown_augmentation_option_is_a_clear_error(tiny_images):
    with pytest.raises(UmetaError, match="unknown augmentation option 'sharpen'"):
        EpisodeSampler(tiny_images, 4, 2, 3, augment={"sharpen": 1})
