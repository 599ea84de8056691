import pytest
import torch

from course_utils.data import load_dataset
from course_utils.exercises import ExerciseError
from course_utils.exercises.basics import check_sample_gaussian, check_softmax
from course_utils.models import GaussianArtist


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train", verbose=False), load_dataset("digits", "test", verbose=False)


def test_fit_recovers_class_means_in_the_subspace(digits):
    train, _ = digits
    artist = GaussianArtist(train.image_shape, n_components=20).fit(train.images, train.labels)
    codes = artist.encode(train.images)
    for c in range(10):
        assert torch.allclose(artist.class_means[c], codes[train.labels == c].mean(0), atol=1e-4)
    assert artist.class_priors.sum().item() == pytest.approx(1.0)
    # The basis is orthonormal: decoding the codes of the mean image gives the mean image back.
    assert torch.allclose(artist.basis.T @ artist.basis, torch.eye(20), atol=1e-4)


def test_samples_follow_each_class_gaussian(digits):
    train, _ = digits
    artist = GaussianArtist(train.image_shape, n_components=10).fit(train.images, train.labels)
    labels = torch.full((4000,), 3)
    images, _ = artist.sample(4000, labels=labels, generator=torch.Generator().manual_seed(0))
    assert images.shape == (4000, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
    # Unclamped codes: check the first two moments against the fitted Gaussian.
    cholesky = torch.linalg.cholesky(artist.class_covariances[3])
    eps = torch.randn(4000, 10, generator=torch.Generator().manual_seed(1))
    codes = artist.class_means[3] + eps @ cholesky.T
    assert torch.allclose(codes.mean(0), artist.class_means[3], atol=0.1)
    assert torch.allclose(
        torch.cov(codes.T), artist.class_covariances[3], atol=0.15 * artist.class_covariances[3].max()
    )


def test_sampling_is_repeatable_with_a_seed(digits):
    train, _ = digits
    artist = GaussianArtist(train.image_shape, n_components=10).fit(train.images, train.labels)
    a, la = artist.sample(5, generator=torch.Generator().manual_seed(7))
    b, lb = artist.sample(5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and torch.equal(la, lb)


def test_log_likelihood_matches_torch_distributions_and_bayes_classifies(digits):
    train, test = digits
    artist = GaussianArtist(train.image_shape, n_components=20).fit(train.images, train.labels)
    codes = artist.encode(test.images[:5])
    reference = torch.distributions.MultivariateNormal(artist.class_means[2], artist.class_covariances[2])
    assert torch.allclose(artist.log_likelihood(test.images[:5])[:, 2], reference.log_prob(codes), atol=1e-3)
    accuracy = (artist.predict_proba(test.images).argmax(1) == test.labels).float().mean()
    assert accuracy > 0.85


def test_bad_inputs_are_refused(digits):
    train, _ = digits
    with pytest.raises(ValueError, match="n_components"):
        GaussianArtist((1, 8, 8), n_components=100)
    with pytest.raises(ValueError, match="none for"):
        GaussianArtist((1, 8, 8)).fit(train.images[train.labels < 5], train.labels[train.labels < 5])
    with pytest.raises(ValueError, match="expected images"):
        GaussianArtist((1, 28, 28)).fit(train.images, train.labels)


def test_softmax_check_passes_the_stable_answer_and_catches_mistakes(capsys):
    def stable(logits):
        shifted = logits - logits.max(dim=1, keepdim=True).values
        return shifted.exp() / shifted.exp().sum(dim=1, keepdim=True)

    assert check_softmax(stable)
    with pytest.raises(ExerciseError, match="overflows"):
        check_softmax(lambda logits: logits.exp() / logits.exp().sum(dim=1, keepdim=True))
    with pytest.raises(ExerciseError, match="over the classes"):
        check_softmax(lambda logits: torch.softmax(logits, dim=0))  # normalised over the batch

    def stub(logits):
        raise NotImplementedError()

    assert not check_softmax(stub)
    assert "not implemented yet" in capsys.readouterr().out


def test_gaussian_sampling_check_catches_variance_for_std():
    def right(mean, std, n, generator):
        return mean + std * torch.randn(n, len(mean), generator=generator)

    assert check_sample_gaussian(right)
    with pytest.raises(ExerciseError, match="not by the variance"):
        check_sample_gaussian(lambda mean, std, n, g: mean + std**2 * torch.randn(n, len(mean), generator=g))
    with pytest.raises(ExerciseError, match="Shift the noise"):
        check_sample_gaussian(lambda mean, std, n, g: std * torch.randn(n, len(mean), generator=g))
