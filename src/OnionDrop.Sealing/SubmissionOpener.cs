namespace OnionDrop.Sealing;

/// <summary>What a sealed blob turned out to hold once opened and verified.</summary>
public sealed record OpenedSubmission(string Reference, DateTimeOffset ReceivedAt, string Message, IReadOnlyList<OpenedFile> Files, string Directory);

public sealed record OpenedFile(string OriginalName, string SafeName, string ContentType, long Size, string Sha256Hex);

/// <summary>Refusal of a sealed blob, with a one-line reason fit for stderr.</summary>
public sealed class SealedFormatException(string reason) : Exception(reason);

/// <summary>
/// Opens sealed blobs on the journalist's machine: writes files and message under a fresh folder in the
/// output directory, to temporary names renamed only after the FINAL tag verifies; never overwrites,
/// never writes an unsafe name. On refusal nothing is left behind.
/// </summary>
public static class SubmissionOpener
{
    public static OpenedSubmission Open(Stream sealedBlob, JournalistKey key, string outputDirectory, string blobName) => throw new NotImplementedException();
}
