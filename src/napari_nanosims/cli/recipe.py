"""``nanosims recipe``: print or write the commented default recipe."""

from __future__ import annotations

import json

from . import report

__all__ = ["add_recipe_command"]


def _cmd_recipe(args) -> int:
    from ..steps.recipe import default_recipe

    recipe = default_recipe()
    if args.out:
        try:
            recipe.save(args.out, overwrite=args.overwrite)
        except (FileExistsError, OSError) as exc:
            report.error(exc)
            return 1
        print(f"wrote {args.out}")
        return 0
    print(json.dumps(recipe.to_dict(), indent=2) if args.json else recipe.to_toml(), end="")
    return 0


def add_recipe_command(sub) -> None:
    """Add the ``recipe`` sub-command (the default recipe) to the ``nanosims`` parser."""
    recipe = sub.add_parser("recipe", help="print a commented default recipe to start from",
                            description="Print the default recipe (TOML with every parameter, "
                                        "its unit and meaning), or write it with --out.")
    recipe.add_argument("--json", action="store_true", help="JSON instead of TOML")
    recipe.add_argument("--out", metavar="FILE", help="write to FILE (.toml or .json)")
    recipe.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    recipe.set_defaults(func=_cmd_recipe)
