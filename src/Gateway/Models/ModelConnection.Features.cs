using System.Collections;
using Gateway.Connections;
using Gateway.Protocols;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Models;

/// <summary>
/// The connection is its own feature collection: the features it implements are answered from their types
/// without storing anything, and the others (the gateway middleware's two, TLS's, Kestrel's on the models it
/// dispatches) are kept in two slots inside the connection, then in an array searched by reference. The stock
/// <see cref="FeatureCollection"/> keeps them in a <see cref="Dictionary{TKey,TValue}"/> that grows to 17 buckets
/// and entries — about 600 bytes per connection; an idle reactor connection's features cost its two slots here.
/// </summary>
internal abstract partial class ModelConnection : IFeatureCollection
{
    /// <summary>The features this object is (the close-request wake only once the dispatcher runs it).</summary>
    private static readonly Type[] OwnFeatures =
    [
        typeof(IConnectionIdFeature), typeof(IConnectionTransportFeature), typeof(IConnectionEndPointFeature),
        typeof(IConnectionLifetimeFeature), typeof(IConnectionLifetimeNotificationFeature), typeof(IConnectionCompleteFeature),
        typeof(ITransportTrafficFeature),
    ];

    // Features set on the connection, and own ones set to null (removed) or to another object (replaced): the
    // first two in place, the rest in a list among the extras.
    private KeyValuePair<Type, object?> _feature0, _feature1;
    private bool _dispatched;

    public override IFeatureCollection Features => this;

    bool IFeatureCollection.IsReadOnly => false;

    int IFeatureCollection.Revision => _featureRevision;

    private int _featureRevision;

    object? IFeatureCollection.this[Type key]
    {
        get => TryGetSet(key, out var value) ? value : IsOwn(key) ? this : null;
        set
        {
            ArgumentNullException.ThrowIfNull(key);
            _featureRevision++;
            if (ReferenceEquals(_feature0.Key, key))
            {
                _feature0 = new(key, value);
            }
            else if (ReferenceEquals(_feature1.Key, key))
            {
                _feature1 = new(key, value);
            }
            else if (IndexInMore(key) is >= 0 and var index)
            {
                _extras!.MoreFeatures![index] = new(key, value);
            }
            else if (value is not null || IsOwn(key))
            {
                if (_feature0.Key is null)
                {
                    _feature0 = new(key, value);
                }
                else if (_feature1.Key is null)
                {
                    _feature1 = new(key, value);
                }
                else
                {
                    (ExtrasNow.MoreFeatures ??= []).Add(new(key, value));
                }
            }
        }
    }

    TFeature? IFeatureCollection.Get<TFeature>() where TFeature : default => (TFeature?)((IFeatureCollection)this)[typeof(TFeature)];

    void IFeatureCollection.Set<TFeature>(TFeature? instance) where TFeature : default => ((IFeatureCollection)this)[typeof(TFeature)] = instance;

    /// <summary>
    /// <see cref="ConnectionDispatcher"/> runs this connection: a close request reaches it here, not through
    /// Kestrel, and may wake the handler's read itself (<see cref="ICloseRequestWakeFeature"/>).
    /// </summary>
    public void DispatchedHere() => _dispatched = true;

    IEnumerator<KeyValuePair<Type, object>> IEnumerable<KeyValuePair<Type, object>>.GetEnumerator()
    {
        foreach (var type in OwnFeatures.Append(typeof(ICloseRequestWakeFeature)))
        {
            if (IsOwn(type) && !TryGetSet(type, out _))
            {
                yield return new(type, this);
            }
        }

        foreach (var feature in SetFeatures())
        {
            if (feature.Value is { } value)
            {
                yield return new(feature.Key, value);
            }
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => ((IEnumerable<KeyValuePair<Type, object>>)this).GetEnumerator();

    private bool IsOwn(Type key) => Array.IndexOf(OwnFeatures, key) >= 0 || (_dispatched && key == typeof(ICloseRequestWakeFeature));

    private bool TryGetSet(Type key, out object? value)
    {
        if (ReferenceEquals(_feature0.Key, key))
        {
            value = _feature0.Value;
            return true;
        }

        if (ReferenceEquals(_feature1.Key, key))
        {
            value = _feature1.Value;
            return true;
        }

        if (IndexInMore(key) is >= 0 and var index)
        {
            value = _extras!.MoreFeatures![index].Value;
            return true;
        }

        value = null;
        return false;
    }

    private int IndexInMore(Type key)
    {
        var more = _extras?.MoreFeatures;
        for (var i = 0; i < (more?.Count ?? 0); i++)
        {
            if (ReferenceEquals(more![i].Key, key))
            {
                return i;
            }
        }

        return -1;
    }

    private IEnumerable<KeyValuePair<Type, object?>> SetFeatures()
    {
        if (_feature0.Key is not null)
        {
            yield return _feature0;
        }

        if (_feature1.Key is not null)
        {
            yield return _feature1;
        }

        foreach (var feature in _extras?.MoreFeatures ?? [])
        {
            yield return feature;
        }
    }
}
