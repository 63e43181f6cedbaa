# Duplicate videos, found before any model call: every readable video's SHA-256 and the
# perceptual hashes of eight frames (cached per file), compared across all inputs. Step 0
# annotates an exact copy not at all and a near-duplicate per data.near_duplicates; the
# summary lists each with its original and distance. The caption jobs read the result
# as an ancient() input (a new video does not rerun them) and carry their own entry as a
# param (a changed entry does).


rule find_duplicates:
    input:
        videos=video_paths,
    output:
        registry.duplicates_path(R),
    log:
        registry.log_path(R, "find_duplicates", "duplicates"),
    conda:
        "../envs/video_reasoning.yaml"
    threads: 2
    params:
        videos=lambda w: [(v, e.path) for v, e in VIDEOS.items()],
    script:
        "../scripts/find_duplicates.py"
