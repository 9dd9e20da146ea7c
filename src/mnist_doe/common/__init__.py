"""What the stages share: params.yaml's typed view (`params`), the error users see (`errors`),
atomic file writing (`files`), where each stage reads and writes (`paths`), the cells'
predictions (`results`), the report's statistics (`stats`), progress bars drawn alike
(`progress`) and counts in words (`words`)."""
