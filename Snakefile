from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"


wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    seed=r"\d+",
    repeat=r"\d+",
    process=r"\d+",
    segment=r"\d+",
    pair=r"(repeat|segment)\d+",
    side=r"reference|other",
    name=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    model=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    backend="|".join(KNOWN_BACKENDS),


include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/train.smk"
include: "rules/report.smk"
include: "rules/reference.smk"


# Written from the runs' records by the matrix rule (report/workflow.rst before any).
report: front_page()


onstart:
    forget_verdict()


onsuccess:
    announce_verdict()


# Every result is a target, so that a deleted one is made again rather than trusted.
rule all:
    default_target: True
    input:
        all_evidence(),
        [cell_reports(name) for name in CELL_REPORT_FILES],
        rules.matrix.output,
        rules.verdict.output,
