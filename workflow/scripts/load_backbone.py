"""Rule ``load_backbone``: check that a pretrained DiT and its VAE load, and record where they are."""
import argparse

from evaluation.core.cli import add_job_arguments, entry_point, positive_int
from methods.diffusion.link import link_backbone
from methods.diffusion.official_dit import NUMERICS


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--vae", default="")
    parser.add_argument("--numerics", choices=NUMERICS, default="official")
    parser.add_argument("--num-heads", type=positive_int, default=None,
                        help="attention heads of a non-standard official checkpoint")
    add_job_arguments(parser, device=False)
    args = parser.parse_args(argv)
    link_backbone(args.source, args.vae, args.numerics, args.num_heads, args.out)


if __name__ == "__main__":
    main()
