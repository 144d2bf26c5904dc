"""``nanosims cache``: where decompressed copies of ``.im.gz``/``.zip``... files live."""

from __future__ import annotations


def _cmd_cache(args) -> int:
    from ..io.compressed import cache_folder, clear_cache

    folder = cache_folder()
    if args.clear:
        files, size = clear_cache()
        print(f"removed {files} decompressed files ({size / 2**20:.1f} MiB) from {folder}")
        return 0
    entries = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    size = sum(p.stat().st_size for p in entries)
    print(f"{folder}: {len(entries)} decompressed files, {size / 2**20:.1f} MiB "
          "(clear with: nanosims cache --clear)")
    return 0


def add_cache_command(sub) -> None:
    """Add the ``cache`` sub-command to the ``nanosims`` parser."""
    cache = sub.add_parser(
        "cache", help="show (or clear) the folder of decompressed .im.gz/.bz2/.xz/.zip files",
        description="Compressed files are decompressed once into this folder and reused "
                    "while the file is unchanged. NAPARI_NANOSIMS_CACHE moves it.")
    cache.add_argument("--clear", action="store_true", help="delete every decompressed copy")
    cache.set_defaults(func=_cmd_cache)
