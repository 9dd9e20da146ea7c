"""What the stages share: params.yaml's typed view (`params`), the error users see (`errors`),
atomic file writing (`files`), where each stage reads and writes (`paths`), the cells'
predictions (`results`) and the report's statistics (`stats`)."""
