namespace OnionDrop.Sealing;

/// <summary>
/// Seals one submission as it streams in (docs/sealed-format.md): header with one stanza per recipient,
/// then the framed files and manifest through crypto_secretstream. Memory stays at a few chunks; nothing
/// but ciphertext is written to <c>output</c>.
/// Call order: (BeginFileAsync, WriteAsync*, EndFileAsync)*, CompleteAsync. Disposing before
/// CompleteAsync leaves an unfinished stream that no opener accepts.
/// </summary>
public sealed class SubmissionSealer : IAsyncDisposable
{
    public SubmissionSealer(Stream output, IReadOnlyList<RecipientPublicKey> recipients) => throw new NotImplementedException();

    public ValueTask BeginFileAsync(string name, string contentType, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    public ValueTask EndFileAsync(CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <summary>Writes the manifest (files, message, reference, time received to the minute) and the FINAL chunk, then flushes.</summary>
    public ValueTask CompleteAsync(string reference, string message, DateTimeOffset receivedAt, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    public ValueTask DisposeAsync() => throw new NotImplementedException();
}
